using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using MailMesh.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>An MTA-STS policy's mode (RFC 8461 §5).</summary>
internal enum MtaStsMode
{
    /// <summary>Deliver only to matching MX hosts over verified TLS.</summary>
    Enforce,

    /// <summary>Deliver as usual; report what enforce would have refused (RFC 8460).</summary>
    Testing,

    /// <summary>No active policy.</summary>
    None,
}

/// <summary>A parsed policy (RFC 8461 §3.2) with the TXT id it was fetched under.</summary>
internal sealed record MtaStsPolicy(string Id, MtaStsMode Mode, IReadOnlyList<string> Mx, TimeSpan MaxAge, string Text)
{
    /// <summary>
    /// RFC 8461 §4.1: an MX host matches a pattern that is the same name, or "*.parent" where the host is exactly one
    /// label below the parent (case-insensitive, trailing dots ignored).
    /// </summary>
    public bool Matches(string host)
    {
        var name = host.TrimEnd('.');
        foreach (var pattern in Mx)
        {
            if (pattern.StartsWith("*.", StringComparison.Ordinal))
            {
                var dot = name.IndexOf('.', StringComparison.Ordinal);
                if (dot > 0 && name[(dot + 1)..].Equals(pattern[2..], StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
            else if (name.Equals(pattern, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// RFC 8461 §3.2: "key: value" lines (LF or CRLF); version STSv1, mode, max_age and (unless mode is none) at least
    /// one mx are required; unknown keys are ignored. Null when the body is not a valid policy.
    /// </summary>
    public static MtaStsPolicy? Parse(string id, string text, TimeSpan maxAgeCap)
    {
        string? version = null;
        MtaStsMode? mode = null;
        long? maxAge = null;
        var mx = new List<string>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0)
            {
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                return null;
            }

            var key = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "version":
                    version ??= value;
                    break;
                case "mode":
                    mode ??= value switch
                    {
                        "enforce" => MtaStsMode.Enforce,
                        "testing" => MtaStsMode.Testing,
                        "none" => MtaStsMode.None,
                        _ => (MtaStsMode?)null,
                    } ?? throw new FormatException($"mode '{value}'");
                    break;
                case "max_age":
                    // §3.2: max_age is 1-10 digits, at most 31557600.
                    maxAge ??= value.Length is > 0 and <= 10 && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
                        ? seconds
                        : throw new FormatException($"max_age '{value}'");
                    break;
                case "mx":
                    mx.Add(value.TrimEnd('.'));
                    break;
            }
        }

        if (version != "STSv1" || mode is null || maxAge is null || (mode != MtaStsMode.None && mx.Count == 0))
        {
            return null;
        }

        var age = TimeSpan.FromSeconds(Math.Min(maxAge.Value, 31_557_600));
        return new MtaStsPolicy(id, mode.Value, mx, age < maxAgeCap ? age : maxAgeCap, text);
    }

    /// <summary>
    /// RFC 8461 §3.1: the <c>_mta-sts</c> TXT record, "v=STSv1; id=...;" (id 1-32 alphanumerics). Null when it is not
    /// one such record.
    /// </summary>
    public static string? ParseTxtId(IReadOnlyList<string> texts)
    {
        var records = texts.Where(t => t.StartsWith("v=STSv1", StringComparison.Ordinal)).ToList();
        if (records.Count != 1)
        {
            return null;
        }

        string? id = null;
        foreach (var part in records[0].Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && part[..eq].Trim() == "id")
            {
                id = part[(eq + 1)..].Trim();
            }
        }

        return id is { Length: > 0 and <= 32 } && id.All(char.IsAsciiLetterOrDigit) ? id : null;
    }
}

/// <summary>The policy that applies to a domain now, or why there is none.</summary>
internal sealed record MtaStsLookup(MtaStsPolicy? Policy, string? FetchError);

/// <summary>
/// MTA-STS policy discovery (RFC 8461 §3.1), fetch (§3.3) and cache (§5.1). A cached policy is used until its
/// max_age runs out; the TXT record is looked up on every use, and a changed id fetches the policy again (kept only
/// when the fetch succeeds). A fetch failure with a cached policy keeps the cached one; without one, mail goes on as if
/// there were no policy (the failure is reported, RFC 8460 "sts-policy-fetch-error").
/// </summary>
internal sealed class MtaStsResolver : IDisposable
{
    private readonly MtaStsOptions _options;
    private readonly TlsPolicyDns _dns;
    private readonly TimeProvider _time;
    private readonly HttpClient _http;
    private readonly ConcurrentDictionary<string, Cached> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _failures = new(StringComparer.Ordinal);
    private readonly SingleFlight<string, MtaStsLookup> _inFlight = new(StringComparer.Ordinal);
    public MtaStsResolver(IOptions<DeliveryOptions> options, TlsPolicyDns dns, TimeProvider time)
    {
        _options = options.Value.Tls.MtaSts;
        _dns = dns;
        _time = time;
        var handler = CreateHandler(_options, useTestEndpoint: true);
        _http = new HttpClient(handler) { Timeout = _options.FetchTimeout, MaxResponseContentBufferSize = _options.MaxPolicyBytes };
    }

    /// <summary>The policy of <paramref name="domain"/> (its "none" mode included), or none, with a fetch error to report.</summary>
    public Task<MtaStsLookup> GetAsync(string domain, CancellationToken cancellationToken)
    {
        var key = domain.TrimEnd('.').ToLowerInvariant();
        return _inFlight.RunAsync(key, LookupAsync).WaitAsync(cancellationToken);
    }

    private async Task<MtaStsLookup> LookupAsync(string domain)
    {
        var now = _time.GetUtcNow();
        var cached = _cache.TryGetValue(domain, out var entry) && entry.ExpiresAt > now ? entry.Policy : null;
        using var timeout = new CancellationTokenSource(_options.FetchTimeout);
        var (status, texts) = await _dns.TxtAsync("_mta-sts." + domain, timeout.Token);
        var id = status == PolicyDnsStatus.Answer ? MtaStsPolicy.ParseTxtId(texts) : null;
        if (id is null)
        {
            // §5.1: no (valid) TXT record: a cached policy still applies until it expires.
            return new MtaStsLookup(cached, null);
        }

        if (cached is not null && cached.Id == id)
        {
            return new MtaStsLookup(cached, null);
        }

        if (cached is null && _failures.TryGetValue(domain, out var until) && until > now)
        {
            return new MtaStsLookup(null, "policy fetch failed recently");
        }

        var (policy, error) = await FetchAsync(domain, id, timeout.Token);
        if (policy is null)
        {
            if (cached is null && _options.FailureCacheTime > TimeSpan.Zero)
            {
                _failures[domain] = now + _options.FailureCacheTime;
            }

            // §5.1: a failed refresh keeps the cached policy.
            return new MtaStsLookup(cached, error);
        }

        _failures.TryRemove(domain, out _);
        if (_cache.Count >= _options.CacheEntries)
        {
            foreach (var stale in _cache.Where(p => p.Value.ExpiresAt <= now).Select(p => p.Key).ToList())
            {
                _cache.TryRemove(stale, out _);
            }

            if (_cache.Count >= _options.CacheEntries)
            {
                _cache.Clear();
            }
        }

        _cache[domain] = new Cached(policy, now + policy.MaxAge);
        return new MtaStsLookup(policy, null);
    }

    /// <summary>RFC 8461 §3.3: GET https://mta-sts.&lt;domain&gt;/.well-known/mta-sts.txt, 200 only, text/plain, size-limited.</summary>
    private async Task<(MtaStsPolicy? Policy, string? Error)> FetchAsync(string domain, string id, CancellationToken cancellationToken)
    {
        var url = new Uri($"https://mta-sts.{domain}/.well-known/mta-sts.txt");
        try
        {
            using var response = await _http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return (null, $"{url}: HTTP {(int)response.StatusCode}");
            }

            if (response.Content.Headers.ContentType?.MediaType is { } type && !type.Equals("text/plain", StringComparison.OrdinalIgnoreCase))
            {
                return (null, $"{url}: media type {type}, not text/plain");
            }

            if (response.Content.Headers.ContentLength > _options.MaxPolicyBytes)
            {
                return (null, $"{url}: policy larger than {_options.MaxPolicyBytes} bytes");
            }

            await response.Content.LoadIntoBufferAsync(_options.MaxPolicyBytes, cancellationToken);
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            try
            {
                return MtaStsPolicy.Parse(id, text, _options.MaxAge) is { } policy ? (policy, null) : (null, $"{url}: not a valid STSv1 policy");
            }
            catch (FormatException ex)
            {
                return (null, $"{url}: invalid policy: {ex.Message}");
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
        {
            return (null, $"{url}: {ex.Message}");
        }
    }

    /// <summary>
    /// The HTTPS client of the TLS policies (MTA-STS fetches, TLS report POSTs): no redirects, no cookies, no proxy,
    /// the system roots plus <see cref="MtaStsOptions.ExtraTrustedRootsPath"/>; with <paramref name="useTestEndpoint"/>,
    /// <see cref="MtaStsOptions.TestOnlyPolicyEndpoint"/> replaces every connection's destination.
    /// </summary>
    internal static SocketsHttpHandler CreateHandler(MtaStsOptions options, bool useTestEndpoint)
    {
        var handler = new SocketsHttpHandler
        {
            // RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed, and HTTP caching MUST NOT be used."
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            ConnectTimeout = options.FetchTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        };
        handler.SslOptions.CertificateRevocationCheckMode = X509RevocationMode.NoCheck;
        if (options.ExtraTrustedRootsPath is { Length: > 0 } path)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(path);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => ValidateWithExtraRoots(roots, certificate, chain, errors);
        }

        if (useTestEndpoint && options.TestOnlyPolicyEndpoint is { Length: > 0 } endpoint && HostPort.TryParse(endpoint, out var host, out var port))
        {
            // Tests: every policy host is reached at one local server; the URL (and so SNI and the name check) is unchanged.
            handler.ConnectCallback = async (_, token) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(host, port, token);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        return handler;
    }

    /// <summary>The system roots, then the extra roots; the name must match either way.</summary>
    private static bool ValidateWithExtraRoots(X509Certificate2Collection roots, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (certificate is null || errors != SslPolicyErrors.RemoteCertificateChainErrors)
        {
            return false;
        }

        using var custom = TlsTrust.CustomRootChain(roots, chain);
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return custom.Build(leaf);
    }

    public void Dispose() => _http.Dispose();

    private sealed record Cached(MtaStsPolicy Policy, DateTimeOffset ExpiresAt);
}
