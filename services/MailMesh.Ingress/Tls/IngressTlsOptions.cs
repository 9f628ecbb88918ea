using MailMesh.ServiceDefaults;

namespace MailMesh.Ingress.Tls;

/// <summary>
/// The server certificate for STARTTLS (RFC 3207) and implicit TLS (RFC 8314) (section "Ingress:Tls"). PEM files are
/// re-read when they change (certificate rotation without restart); without files, <see cref="SelfSigned"/> makes a
/// certificate at start (Standalone, tests).
/// </summary>
public sealed class IngressTlsOptions : IValidatedOptions
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

    public IEnumerable<string> Validate()
    {
        const string P = "Ingress:Tls:";
        var hasCert = !string.IsNullOrWhiteSpace(CertificatePath);
        var hasKey = !string.IsNullOrWhiteSpace(KeyPath);
        if (hasCert != hasKey)
        {
            yield return P + (hasCert ? "KeyPath" : "CertificatePath") + ": CertificatePath and KeyPath are set together";
        }

        if (hasCert && !File.Exists(CertificatePath))
        {
            yield return $"{P}CertificatePath: '{CertificatePath}' does not exist";
        }

        if (hasKey && !File.Exists(KeyPath))
        {
            yield return $"{P}KeyPath: '{KeyPath}' does not exist";
        }

        if (HandshakeTimeout <= TimeSpan.Zero || HandshakeTimeout > TimeSpan.FromMinutes(5))
        {
            yield return P + "HandshakeTimeout: must be positive and at most 5 minutes";
        }
    }
}
