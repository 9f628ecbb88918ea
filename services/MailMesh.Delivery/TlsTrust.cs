using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>
/// The outcome of checking a server certificate: verified, or why not; <paramref name="ResultType"/> is the RFC 8460
/// §4.3 result type of a failure (for TLS reports).
/// </summary>
internal readonly record struct CertificateCheck(bool Verified, string? Problem, string? ResultType = null);

/// <summary>
/// Judges server certificates for <see cref="TlsMode.Verified"/>: the chain must end at a system root or at one of
/// <see cref="DeliveryTlsOptions.TrustedCertificatesPath"/>'s anchors, and the certificate must name the MX host
/// (RFC 6125 §6: DNS-ID in subjectAltName, CN-ID only when there is no DNS-ID, "*" only as the whole left-most label;
/// SslStream performs that match against the TargetHost, which is the MX name). Revocation is not checked (as in
/// Postfix: SMTP has no reliable OCSP/CRL reachability).
/// </summary>
/// <remarks>
/// An instance made by <see cref="ForDane"/> judges by the exchanger's TLSA records instead (RFC 7672 §3), and one made
/// by <see cref="ForHost"/> remembers its last verdict (<see cref="LastCheck"/>) for the TLS reports.
/// </remarks>
internal sealed class TlsTrust
{
    private readonly X509Certificate2Collection _anchors = [];
    private readonly DaneRequirement? _dane;

    public TlsTrust(IOptions<DeliveryOptions> options)
    {
        if (options.Value.Tls.TrustedCertificatesPath is { Length: > 0 } path)
        {
            _anchors.ImportFromPemFile(path);
        }
    }

    private TlsTrust(X509Certificate2Collection anchors, DaneRequirement? dane)
    {
        _anchors = anchors;
        _dane = dane;
    }

    /// <summary>The verdict of the last <see cref="Evaluate"/> on this instance (per-host instances only).</summary>
    public CertificateCheck? LastCheck { get; private set; }

    /// <summary>True for an instance that authenticates with TLSA records (DANE).</summary>
    public bool IsDane => _dane is not null;

    /// <summary>A judge for one exchanger with usable TLSA records: DANE-EE and DANE-TA instead of the WebPKI.</summary>
    public TlsTrust ForDane(DaneRequirement requirement) => new(_anchors, requirement);

    /// <summary>A WebPKI judge for one connection attempt, remembering its verdict.</summary>
    public TlsTrust ForHost() => new(_anchors, null);

    /// <summary>Trust anchors loaded from the PEM bundle (empty when none is configured).</summary>
    public int AnchorCount => _anchors.Count;

    /// <summary>Called from the SslStream validation callback; never throws, never rejects (the caller decides).</summary>
    public CertificateCheck Evaluate(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        var check = _dane is null ? EvaluatePkix(certificate, chain, errors) : EvaluateDane(_dane, certificate, chain, errors);
        LastCheck = check;
        return check;
    }

    private CertificateCheck EvaluatePkix(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return new(false, "the server sent no certificate", "validation-failure");
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return new(false, "the certificate does not match the MX host name", "certificate-host-mismatch");
        }

        if (!errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
        {
            return new(true, null);
        }

        var systemProblem = Describe(chain);
        if (_anchors.Count == 0)
        {
            return new(false, "untrusted certificate chain: " + systemProblem, ResultType(chain));
        }

        using var custom = CustomRootChain(_anchors, chain);

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        try
        {
            return custom.Build(leaf)
                ? new(true, null)
                : new(false, "untrusted certificate chain: " + Describe(custom), ResultType(custom));
        }
        finally
        {
            if (!ReferenceEquals(leaf, certificate))
            {
                leaf.Dispose();
            }
        }
    }

    /// <summary>
    /// RFC 7672 §3: DANE-EE(3) matches the server's certificate or public key, with its names and validity dates
    /// ignored (§3.1.1); DANE-TA(2) matches a certificate the server sent, which must then anchor a valid chain to the
    /// server's certificate, and the names are checked (§3.1.2, §3.2.2: against the TLSA base domain, the MX host, which
    /// is the TargetHost SslStream checked).
    /// </summary>
    private static CertificateCheck EvaluateDane(DaneRequirement dane, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return new(false, "the server sent no certificate (DANE)", "validation-failure");
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        try
        {
            if (dane.Records.Any(r => r.Usage == TlsaRecord.DaneEe && r.Matches(leaf)))
            {
                return new(true, null);
            }

            var presented = new X509Certificate2Collection();
            if (chain is not null)
            {
                presented.AddRange(chain.ChainPolicy.ExtraStore);
                foreach (var element in chain.ChainElements)
                {
                    presented.Add(element.Certificate);
                }
            }

            foreach (var candidate in presented)
            {
                if (candidate.RawData.AsSpan().SequenceEqual(leaf.RawData) ||
                    !dane.Records.Any(r => r.Usage == TlsaRecord.DaneTa && r.Matches(candidate)))
                {
                    continue;
                }

                using var custom = CustomRootChain([candidate], chain);
                if (!custom.Build(leaf))
                {
                    return new(false, $"the DANE-TA trust anchor does not validate the server's chain: {Describe(custom)}", "validation-failure");
                }

                return errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch)
                    ? new(false, $"the certificate does not name the TLSA base domain {dane.BaseDomain} (DANE-TA)", "certificate-host-mismatch")
                    : new(true, null);
            }

            return new(false, $"no TLSA record of _25._tcp.{dane.BaseDomain} matches the server's certificate", "validation-failure");
        }
        finally
        {
            if (!ReferenceEquals(leaf, certificate))
            {
                leaf.Dispose();
            }
        }
    }

    /// <summary>
    /// A chain that trusts only <paramref name="anchors"/> (no revocation check), with the certificates the server sent
    /// (<paramref name="presented"/>'s extra store and elements) available as intermediates.
    /// </summary>
    internal static X509Chain CustomRootChain(X509Certificate2Collection anchors, X509Chain? presented)
    {
        var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(anchors);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            custom.ChainPolicy.ExtraStore.AddRange(presented.ChainPolicy.ExtraStore);
            foreach (var element in presented.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return custom;
    }

    /// <summary>RFC 8460 §4.3.2 result type for a chain that did not verify.</summary>
    private static string ResultType(X509Chain? chain) =>
        chain is not null && chain.ChainStatus.Any(s => s.Status.HasFlag(X509ChainStatusFlags.NotTimeValid))
            ? "certificate-expired"
            : "certificate-not-trusted";

    private static string Describe(X509Chain? chain)
    {
        if (chain is null || chain.ChainStatus.Length == 0)
        {
            return "no valid chain";
        }

        return string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
    }
}
