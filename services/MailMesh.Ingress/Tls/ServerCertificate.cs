using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MailMesh.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.Tls;

/// <summary>
/// The certificate Ingress presents. PEM files are loaded at first use and re-loaded when either file's last-write time
/// changes (checked at each handshake: two stat calls, no watcher to leak); a file that fails to load keeps the
/// previous certificate in service and is logged. Without files and with <see cref="IngressTlsOptions.SelfSigned"/>, a
/// self-signed certificate for the host name is made once.
/// </summary>
internal sealed class ServerCertificate
{
    private readonly IngressTlsOptions _options;
    private readonly string _hostName;
    private readonly TimeProvider _time;
    private readonly ILogger<ServerCertificate> _logger;
    private readonly Lock _lock = new();
    private SslStreamCertificateContext? _current;
    private (DateTime Certificate, DateTime Key) _loadedStamp;

    public ServerCertificate(IOptions<IngressTlsOptions> options, IOptions<IngressOptions> ingress, TimeProvider time, ILogger<ServerCertificate> logger)
    {
        _options = options.Value;
        _hostName = ingress.Value.HostName;
        _time = time;
        _logger = logger;
    }

    public bool IsEnabled => _options.IsEnabled;

    /// <summary>The certificate context for the next handshake, or null when TLS is not configured (or unloadable).</summary>
    public SslStreamCertificateContext? Current
    {
        get
        {
            if (!_options.IsEnabled)
            {
                return null;
            }

            lock (_lock)
            {
                if (string.IsNullOrWhiteSpace(_options.CertificatePath))
                {
                    return _current ??= Create(CreateSelfSigned(_hostName, _time.GetUtcNow()));
                }

                var stamp = (File.GetLastWriteTimeUtc(_options.CertificatePath), File.GetLastWriteTimeUtc(_options.KeyPath!));
                if (_current is null || stamp != _loadedStamp)
                {
                    try
                    {
                        _current = Create(X509Certificate2.CreateFromPemFile(_options.CertificatePath, _options.KeyPath));
                        _loadedStamp = stamp;
                        Log.CertificateLoaded(_logger, _options.CertificatePath, _current.TargetCertificate.Subject, _current.TargetCertificate.NotAfter);
                    }
                    catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
                    {
                        // Half-written files during a rotation: keep serving the old certificate and try again next time.
                        Log.CertificateLoadFailed(_logger, _options.CertificatePath, ex);
                        if (_current is null && _loadedStamp == default)
                        {
                            throw new ConfigurationKeyException("Ingress:Tls:CertificatePath", "cannot load the certificate: " + ex.Message);
                        }
                    }
                }

                return _current;
            }
        }
    }

    /// <summary>Loads the certificate now so that a bad file fails start-up rather than the first handshake.</summary>
    public void Preload() => _ = Current;

    private static SslStreamCertificateContext Create(X509Certificate2 certificate)
    {
        // Round-trip through PKCS#12 so the private key is a persisted key handle on every platform (SslStream on
        // Windows cannot use the ephemeral key CreateFromPem makes).
        using (certificate)
        {
            var exported = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
            return SslStreamCertificateContext.Create(exported, additionalCertificates: null, offline: true);
        }
    }

    /// <summary>A self-signed ECDSA P-256 certificate for <paramref name="hostName"/>, valid for one year.</summary>
    internal static X509Certificate2 CreateSelfSigned(string hostName, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + hostName, key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        if (System.Net.IPAddress.TryParse(hostName.Trim('[', ']'), out var ip))
        {
            names.AddIpAddress(ip);
        }
        else
        {
            names.AddDnsName(hostName);
        }

        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        return request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(1));
    }
}
