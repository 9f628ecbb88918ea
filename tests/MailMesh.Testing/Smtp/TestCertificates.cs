using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MailMesh.Testing.Smtp;

/// <summary>
/// A private certificate authority for TLS tests: <see cref="IssueServer"/> makes server certificates (with private
/// keys, usable by <see cref="SmtpSink.Tls"/>) and <see cref="WritePem"/> writes the root as a PEM trust bundle.
/// </summary>
public sealed class TestCertificates : IDisposable
{
    private TestCertificates(X509Certificate2 authority) => Authority = authority;

    /// <summary>The self-signed root (with its key).</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>A new root named "CN=<paramref name="name"/>", valid from yesterday for a year.</summary>
    public static TestCertificates CreateAuthority(string name = "MailMesh Test CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var root = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        return new TestCertificates(Reload(root));
    }

    /// <summary>A server certificate for <paramref name="dnsNames"/> (subjectAltName DNS-IDs) issued by this root.</summary>
    public X509Certificate2 IssueServer(params string[] dnsNames)
    {
        ArgumentNullException.ThrowIfNull(dnsNames);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={dnsNames[0]}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames)
        {
            names.AddDnsName(name);
        }

        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Authority, true, false));
        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        using var issued = request.Create(Authority, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddMonths(6), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        return Reload(withKey);
    }

    /// <summary>A self-signed server certificate for <paramref name="dnsName"/> that no trust store knows.</summary>
    public static X509Certificate2 SelfSigned(string dnsName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={dnsName}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(dnsName);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        return Reload(certificate);
    }

    /// <summary>Writes the root certificate (no key) as PEM to <paramref name="path"/>.</summary>
    public void WritePem(string path) => File.WriteAllText(path, Authority.ExportCertificatePem());

    // A certificate made in memory carries an ephemeral key that SslStream cannot use on every platform: a PKCS#12
    // round trip gives it a persisted-style key.
    private static X509Certificate2 Reload(X509Certificate2 certificate) =>
        X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);

    public void Dispose() => Authority.Dispose();
}
