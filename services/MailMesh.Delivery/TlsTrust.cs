using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>The outcome of checking a server certificate: verified, or why not.</summary>
internal readonly record struct CertificateCheck(bool Verified, string? Problem);

/// <summary>
/// Judges server certificates for <see cref="TlsMode.Verified"/>: the chain must end at a system root or at one of
/// <see cref="DeliveryTlsOptions.TrustedCertificatesPath"/>'s anchors, and the certificate must name the MX host
/// (RFC 6125 §6: DNS-ID in subjectAltName, CN-ID only when there is no DNS-ID, "*" only as the whole left-most label;
/// SslStream performs that match against the TargetHost, which is the MX name). Revocation is not checked (as in
/// Postfix: SMTP has no reliable OCSP/CRL reachability).
/// </summary>
internal sealed class TlsTrust
{
    private readonly X509Certificate2Collection _anchors = [];

    public TlsTrust(IOptions<DeliveryOptions> options)
    {
        if (options.Value.Tls.TrustedCertificatesPath is { Length: > 0 } path)
        {
            _anchors.ImportFromPemFile(path);
        }
    }

    /// <summary>Trust anchors loaded from the PEM bundle (empty when none is configured).</summary>
    public int AnchorCount => _anchors.Count;

    /// <summary>Called from the SslStream validation callback; never throws, never rejects (the caller decides).</summary>
    public CertificateCheck Evaluate(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return new(false, "the server sent no certificate");
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return new(false, "the certificate does not match the MX host name");
        }

        if (!errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
        {
            return new(true, null);
        }

        var systemProblem = Describe(chain);
        if (_anchors.Count == 0)
        {
            return new(false, "untrusted certificate chain: " + systemProblem);
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(_anchors);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            custom.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        try
        {
            return custom.Build(leaf)
                ? new(true, null)
                : new(false, "untrusted certificate chain: " + Describe(custom));
        }
        finally
        {
            if (!ReferenceEquals(leaf, certificate))
            {
                leaf.Dispose();
            }
        }
    }

    private static string Describe(X509Chain? chain)
    {
        if (chain is null || chain.ChainStatus.Length == 0)
        {
            return "no valid chain";
        }

        return string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
    }
}
