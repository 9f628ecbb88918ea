using System.Collections.Concurrent;
using System.Net;
using ARSoft.Tools.Net;
using ARSoft.Tools.Net.Dns;
using ARSoft.Tools.Net.Spf;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Spf;

/// <summary>An SPF result (RFC 7208 §2.6) for one identity.</summary>
internal enum SpfResult
{
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

/// <summary>One evaluation: the result, the identity checked and why, for the Received-SPF header.</summary>
internal sealed record SpfEvaluation(SpfResult Result, string Domain, string Identity, string? Problem = null);

/// <summary>
/// RFC 7208 check_host() with ARSoft.Tools.Net's <see cref="SpfValidator"/>, over the configured resolvers, bounded by
/// <see cref="SpfOptions.Timeout"/>, with the §4.6.4 limits and a cache per (client address, domain).
/// </summary>
/// <remarks>
/// ARSoft enforces the DNS-lookup limit itself (<see cref="ValidatorBase{T}.DnsLookupLimit"/>, set to RFC 7208's 10;
/// its default is 20) but not the void-lookup limit: <see cref="CountingResolver"/> counts answers with no records
/// (NXDOMAIN or NODATA) to a, mx, ptr and exists queries and the result is permerror past 2 (§4.6.4). The cache key leaves out the
/// local part, so a record using the %{l} or %{s} macros is evaluated for the first sender seen in
/// <see cref="SpfOptions.CacheDuration"/> (rare; documented).
/// </remarks>
internal sealed class SpfChecker : IDisposable
{
    /// <summary>RFC 7208 §4.6.4: at most 10 terms that cause DNS queries.</summary>
    internal const int DnsLookupLimit = 10;

    /// <summary>RFC 7208 §4.6.4: at most 2 void lookups.</summary>
    internal const int VoidLookupLimit = 2;

    private readonly SpfOptions _options;
    private readonly TimeProvider _time;
    private readonly DnsStubResolver _resolver;
    /// <summary>A temperror is a DNS blip: it is reused at most this long, so the client's retry is evaluated afresh.</summary>
    internal static readonly TimeSpan TempErrorCacheDuration = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<(string Ip, string Domain), (Task<SpfEvaluation> Result, DateTimeOffset Created)> _cache = new();

    private readonly PolicyMetrics? _metrics;

    public SpfChecker(IOptions<SpfOptions> options, TimeProvider time, PolicyMetrics? metrics = null)
    {
        _metrics = metrics;
        _options = options.Value;
        _time = time;
        var servers = SpfOptions.ParseServers(_options.DnsServers, "Policy:Spf:DnsServers");
        var timeoutMs = (int)Math.Clamp(_options.Timeout.TotalMilliseconds, 1, int.MaxValue);
        _resolver = servers.Count == 0
            ? new DnsStubResolver()
            : new DnsStubResolver(new ARSoft.Tools.Net.Dns.DnsClient(
                servers.Select(s => s.Address),
                [new UdpClientTransport(servers[0].Port), new TcpClientTransport(servers[0].Port)],
                false,
                timeoutMs));
    }

    /// <summary>Evaluations that reached DNS (not served from the cache), for tests.</summary>
    public int Evaluations => Volatile.Read(ref _evaluations);

    private int _evaluations;

    /// <summary>
    /// The SPF result for the client and the MAIL FROM identity, or the HELO identity when MAIL FROM is null (RFC 7208
    /// §2.4). A sender or HELO that is not a domain is "none" (§4.3).
    /// </summary>
    public Task<SpfEvaluation> CheckAsync(IPAddress client, string sender, string? helo, CancellationToken cancellationToken)
    {
        string identity;
        string domain;
        var at = sender.LastIndexOf('@');
        if (sender.Length > 0 && at > 0)
        {
            identity = sender;
            domain = sender[(at + 1)..];
        }
        else
        {
            // RFC 7208 §2.4: the null reverse-path is checked as postmaster@<HELO>.
            domain = helo ?? string.Empty;
            identity = "postmaster@" + domain;
        }

        domain = domain.TrimEnd('.').ToLowerInvariant();
        if (!IsCheckableDomain(domain))
        {
            // RFC 7208 §4.3: a malformed domain or no domain at all: "none".
            return Task.FromResult(new SpfEvaluation(SpfResult.None, domain, identity, "no checkable domain"));
        }

        if (client.IsIPv4MappedToIPv6)
        {
            client = client.MapToIPv4();
        }

        if (_options.CacheDuration <= TimeSpan.Zero)
        {
            return EvaluateAsync(client, domain, identity, helo, cancellationToken);
        }

        var now = _time.GetUtcNow();
        var key = (client.ToString(), domain);
        if (_cache.TryGetValue(key, out var cached) && IsFresh(cached.Result, cached.Created, now))
        {
            return WithIdentityAsync(cached.Result, identity).WaitAsync(cancellationToken);
        }

        if (_cache.Count >= _options.MaxCacheEntries)
        {
            Prune(now);
        }

        // The evaluation is not tied to one caller's token: a burst shares it, and it is bounded by Policy:Spf:Timeout.
        var task = EvaluateAsync(client, domain, identity, helo, CancellationToken.None);
        _cache[key] = (task, now);
        return WithIdentityAsync(task, identity).WaitAsync(cancellationToken);
    }

    private bool IsFresh(Task<SpfEvaluation> result, DateTimeOffset created, DateTimeOffset now)
    {
        if (result.IsFaulted || result.IsCanceled)
        {
            return false;
        }

        var lifetime = result.IsCompletedSuccessfully && result.Result.Result == SpfResult.TempError
            ? TimeSpan.FromTicks(Math.Min(TempErrorCacheDuration.Ticks, _options.CacheDuration.Ticks))
            : _options.CacheDuration;
        return now < created + lifetime;
    }

    private static async Task<SpfEvaluation> WithIdentityAsync(Task<SpfEvaluation> result, string identity)
    {
        var evaluation = await result;
        return evaluation.Identity == identity ? evaluation : evaluation with { Identity = identity };
    }

    private void Prune(DateTimeOffset now)
    {
        foreach (var entry in _cache)
        {
            if (!IsFresh(entry.Value.Result, entry.Value.Created, now))
            {
                _cache.TryRemove(entry);
            }
        }

        if (_cache.Count >= _options.MaxCacheEntries)
        {
            _cache.Clear();
        }
    }

    private async Task<SpfEvaluation> EvaluateAsync(IPAddress client, string domain, string identity, string? helo, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _evaluations);
        var evaluation = await EvaluateCoreAsync(client, domain, identity, helo, cancellationToken);
        _metrics?.SpfEvaluated(ReceivedSpfHeader.Keyword(evaluation.Result));
        return evaluation;
    }

    private async Task<SpfEvaluation> EvaluateCoreAsync(IPAddress client, string domain, string identity, string? helo, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        var counting = new CountingResolver(_resolver);
        var validator = new SpfValidator
        {
            DnsResolver = counting,
            DnsLookupLimit = DnsLookupLimit,
            HeloDomain = helo is { Length: > 0 } && DomainName.TryParse(helo, out var heloName) ? heloName : null,
            LocalDomain = DomainName.TryParse(_options.AuthServId ?? Dns.GetHostName(), out var local) ? local : null,
        };

        SpfQualifier qualifier;
        try
        {
            var result = await validator.CheckHostAsync(client, DomainName.Parse(domain), identity, false, timeout.Token)
                .WaitAsync(_options.Timeout, _time, cancellationToken);
            qualifier = result.Result;
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return new SpfEvaluation(SpfResult.TempError, domain, identity, "DNS timeout");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A record the library cannot parse (a malformed macro or domain) is a permanent error (RFC 7208 §4.6).
            return new SpfEvaluation(SpfResult.PermError, domain, identity, "invalid record");
        }

        if (counting.VoidLookups > VoidLookupLimit && qualifier != SpfQualifier.TempError)
        {
            return new SpfEvaluation(SpfResult.PermError, domain, identity, "too many void DNS lookups");
        }

        return qualifier switch
        {
            SpfQualifier.Pass => new SpfEvaluation(SpfResult.Pass, domain, identity),
            SpfQualifier.Fail => new SpfEvaluation(SpfResult.Fail, domain, identity),
            SpfQualifier.SoftFail => new SpfEvaluation(SpfResult.SoftFail, domain, identity),
            SpfQualifier.Neutral => new SpfEvaluation(SpfResult.Neutral, domain, identity),
            SpfQualifier.TempError => new SpfEvaluation(SpfResult.TempError, domain, identity, "DNS error"),
            SpfQualifier.PermError => new SpfEvaluation(SpfResult.PermError, domain, identity, "invalid record or too many DNS lookups"),
            _ => new SpfEvaluation(SpfResult.None, domain, identity),
        };
    }

    /// <summary>RFC 7208 §4.3: a domain check_host can be given: dot-separated labels of at most 63 octets, at least two
    /// labels, at most 253 octets.</summary>
    private static bool IsCheckableDomain(string domain)
    {
        if (domain.Length is 0 or > 253 || !domain.Contains('.', StringComparison.Ordinal) || domain.StartsWith('[') || IPAddress.TryParse(domain, out _))
        {
            return false;
        }

        foreach (var label in domain.Split('.'))
        {
            if (label.Length is 0 or > 63)
            {
                return false;
            }
        }

        return true;
    }

    public void Dispose()
    {
        _cache.Clear();
        ((IDisposable)_resolver).Dispose();
    }

    /// <summary>The shared resolver (its cache honours the records' TTLs), counting void answers for one evaluation.</summary>
    private sealed class CountingResolver(IDnsResolver inner) : IDnsResolver
    {
        private int _voids;

        public int VoidLookups => Volatile.Read(ref _voids);

        public List<T> Resolve<T>(DomainName name, RecordType recordType = RecordType.A, RecordClass recordClass = RecordClass.INet)
            where T : DnsRecordBase =>
            Count(recordType, inner.Resolve<T>(name, recordType, recordClass));

        public async Task<List<T>> ResolveAsync<T>(DomainName name, RecordType recordType = RecordType.A, RecordClass recordClass = RecordClass.INet, CancellationToken token = default)
            where T : DnsRecordBase =>
            Count(recordType, await inner.ResolveAsync<T>(name, recordType, recordClass, token));

        public void ClearCache() => inner.ClearCache();

        /// <summary>The shared resolver outlives one evaluation: <see cref="SpfChecker"/> disposes it.</summary>
        public void Dispose()
        {
        }

        private List<T> Count<T>(RecordType type, List<T> records)
        {
            // Void lookups of a, mx, ptr and exists terms. A missing SPF record (TXT) of the identity is "none", and of an
            // include or redirect target already permerror, so TXT answers are not counted.
            if (type is RecordType.A or RecordType.Aaaa or RecordType.Mx or RecordType.Ptr && records.Count == 0)
            {
                Interlocked.Increment(ref _voids);
            }

            return records;
        }
    }
}
