using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Tls;

namespace MailMesh.Ingress.Tls;

/// <summary>
/// The server certificate for STARTTLS (RFC 3207) and implicit TLS (RFC 8314) (section "Ingress:Tls"). PEM files are
/// re-read when they change (certificate rotation without restart); without files, <see cref="SelfSigned"/> makes a
/// certificate at start (Standalone, tests).
/// </summary>
public sealed class IngressTlsOptions : IValidatedOptions, ITlsCertificateSettings
{
    public static string SectionName => "Ingress:Tls";

    /// <summary>PEM certificate (chain) file.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key file (PKCS#8, RSA or EC; unencrypted).</summary>
    public string? KeyPath { get; set; }

    /// <summary>When no files are configured, generate a self-signed certificate for Ingress:HostName at start.</summary>
    public bool SelfSigned { get; set; }

    /// <summary>The longest a TLS handshake may take before the connection is closed.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>True when a certificate will be available (files or self-signed).</summary>
    public bool IsEnabled => !string.IsNullOrWhiteSpace(CertificatePath) || SelfSigned;

    public IEnumerable<string> Validate() => ITlsCertificateSettings.Validate(this, "Ingress:Tls");
}
