using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace MailMesh.ServiceDefaults.Tls;

/// <summary>
/// The certificate a service presents for STARTTLS and implicit TLS (Ingress's SMTP, Mailbox's POP3 and IMAP), from
/// the same settings in each (<see cref="ITlsCertificateSettings"/>: "Ingress:Tls", "Mailbox:Tls"). PEM files are loaded at first use and re-loaded when either file's last-write time
/// changes (checked at each handshake: two stat calls, no watcher to leak); a file that fails to load keeps the
/// previous certificate in service and is logged. Without files and with <see cref="ITlsCertificateSettings.SelfSigned"/>, a
/// self-signed certificate for the host name is made once.
/// </summary>
public sealed partial class ServerCertificate
{
    private readonly ITlsCertificateSettings _options;
    private readonly string _hostName;
    private readonly string _section;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private SslStreamCertificateContext? _current;
    private (DateTime Certificate, DateTime Key) _loadedStamp;

    /// <param name="settings">The certificate settings.</param>
    /// <param name="hostName">The name a self-signed certificate is made for.</param>
    /// <param name="section">The settings' configuration section ("Ingress:Tls"), for error messages.</param>
    public ServerCertificate(ITlsCertificateSettings settings, string hostName, string section, TimeProvider time, ILogger logger)
    {
        _options = settings;
        _hostName = hostName;
        _section = section;
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
                        CertificateLoaded(_logger, _options.CertificatePath, _current.TargetCertificate.Subject, _current.TargetCertificate.NotAfter);
                    }
                    catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
                    {
                        // Half-written files during a rotation: keep serving the old certificate and try again next time.
                        CertificateLoadFailed(_logger, _options.CertificatePath, ex);
                        if (_current is null && _loadedStamp == default)
                        {
                            throw new ConfigurationKeyException(_section + ":CertificatePath", "cannot load the certificate: " + ex.Message);
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

    [LoggerMessage(1030, LogLevel.Information, "TLS certificate {Path} loaded: {Subject}, valid until {NotAfter}")]
    private static partial void CertificateLoaded(ILogger logger, string path, string subject, DateTime notAfter);

    [LoggerMessage(1031, LogLevel.Error, "TLS certificate {Path} could not be loaded; the previous one stays in service")]
    private static partial void CertificateLoadFailed(ILogger logger, string path, Exception exception);
}

/// <summary>
/// Where a server certificate comes from (the same keys in each service's TLS section): PEM files, or a self-signed
/// certificate made at start.
/// </summary>
public interface ITlsCertificateSettings
{
    /// <summary>PEM certificate (chain) file.</summary>
    string? CertificatePath { get; }

    /// <summary>PEM private key file (PKCS#8, RSA or EC; unencrypted).</summary>
    string? KeyPath { get; }

    /// <summary>When no files are configured, generate a self-signed certificate for the host name at start.</summary>
    bool SelfSigned { get; }

    /// <summary>The longest a TLS handshake may take before the connection is closed.</summary>
    TimeSpan HandshakeTimeout { get; }

    /// <summary>True when a certificate will be available (files or self-signed).</summary>
    bool IsEnabled => !string.IsNullOrWhiteSpace(CertificatePath) || SelfSigned;

    /// <summary>The checks of these settings, each message starting with the key under <paramref name="section"/>.</summary>
    static IEnumerable<string> Validate(ITlsCertificateSettings settings, string section)
    {
        var p = section + ":";
        var hasCert = !string.IsNullOrWhiteSpace(settings.CertificatePath);
        var hasKey = !string.IsNullOrWhiteSpace(settings.KeyPath);
        if (hasCert != hasKey)
        {
            yield return p + (hasCert ? "KeyPath" : "CertificatePath") + ": CertificatePath and KeyPath are set together";
        }

        if (hasCert && !File.Exists(settings.CertificatePath))
        {
            yield return $"{p}CertificatePath: '{settings.CertificatePath}' does not exist";
        }

        if (hasKey && !File.Exists(settings.KeyPath))
        {
            yield return $"{p}KeyPath: '{settings.KeyPath}' does not exist";
        }

        if (settings.HandshakeTimeout <= TimeSpan.Zero || settings.HandshakeTimeout > TimeSpan.FromMinutes(5))
        {
            yield return p + "HandshakeTimeout: must be positive and at most 5 minutes";
        }
    }
}
