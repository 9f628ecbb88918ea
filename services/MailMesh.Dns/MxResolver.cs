using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DnsClient;
using DnsClient.Protocol;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults;
using MailMesh.Smtp;
using Microsoft.Extensions.Options;

namespace MailMesh.Dns;

/// <summary>
/// Finds the mail exchangers of a domain and their addresses (RFC 5321 §5.1), with a TTL-aware cache of positive
/// and negative answers (RFC 2308) and one in-flight lookup per domain however many deliveries ask at once.
/// </summary>
/// <remarks>
/// DnsClient's own cache is off: it caches per query, while an MX resolution is several queries whose combined
/// lifetime is the smallest TTL among them. Equal-preference exchangers are shuffled on every answer, cached or not,
/// so load spreads across them (RFC 5321 §5.1: "randomize ... to spread the load").
/// </remarks>
internal sealed class MxResolver : IDisposable
{
    private readonly ILookupClient _client;
    private readonly DnsOptions _options;
    private readonly TimeProvider _time;
    private readonly DnsMetrics _metrics;
    private readonly ILogger<MxResolver> _logger;
    private readonly ConcurrentDictionary<string, CacheEntry> _cache = new(StringComparer.Ordinal);
    private readonly SingleFlight<string, Lookup> _inFlight = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Lock _evictionGate = new();

    public MxResolver(IOptions<DnsOptions> options, TimeProvider time, DnsMetrics metrics, ILogger<MxResolver> logger)
    {
        _options = options.Value;
        _time = time;
        _metrics = metrics;
        _logger = logger;

        var servers = _options.ParseServers();
        var clientOptions = servers.Count > 0
            ? new LookupClientOptions(servers.Select(s => new NameServer(s)).ToArray())
            : new LookupClientOptions();
        clientOptions.UseCache = false;
        clientOptions.Timeout = _options.Timeout;
        clientOptions.Retries = _options.Retries;
        clientOptions.ThrowDnsErrors = false;
        clientOptions.ContinueOnDnsError = true;
        clientOptions.ContinueOnEmptyResponse = false;
        clientOptions.UseTcpFallback = true;
        clientOptions.EnableAuditTrail = false;
        _client = new LookupClient(clientOptions);
        DnsLog.Servers(_logger, string.Join(", ", _client.NameServers.Select(s => s.ToString())));
    }

    /// <summary>Entries currently cached (for tests and diagnostics).</summary>
    internal int CacheCount => _cache.Count;

    /// <summary>Resolves the exchangers of <paramref name="domain"/> in the order to try them.</summary>
    public async Task<MxResolved> ResolveAsync(string domain, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(domain);
        using var activity = DnsMetrics.ActivitySource.StartActivity("dns.resolve_mx", ActivityKind.Client);
        activity?.SetTag("dns.question.name", domain);

        if (!TryNormalize(domain, out var key))
        {
            return Respond(domain, new Lookup(MxStatus.NoSuchDomain, [], "invalid domain name", TimeSpan.Zero), fromCache: false, TimeSpan.Zero, activity);
        }

        if (TryGetCached(key, out var cached, out var expiresAt))
        {
            _metrics.CacheHit();
            return Respond(domain, cached, fromCache: true, expiresAt - _time.GetUtcNow(), activity);
        }

        _metrics.CacheMiss();

        // Coalesce: the first caller starts the lookup, later callers for the same domain await the same task. The
        // lookup runs on the resolver's own lifetime, not the first caller's token, so one caller giving up does not
        // fail the others; each caller's wait honours its own token.
        var shared = _inFlight.RunAsync(key, LookupAndCacheAsync);
        var lookup = await shared.WaitAsync(cancellationToken);
        return Respond(domain, lookup, fromCache: false, lookup.Ttl, activity);
    }

    private static MxResolved Respond(string domain, Lookup lookup, bool fromCache, TimeSpan timeToLive, Activity? activity)
    {
        activity?.SetTag("mailmesh.dns.status", lookup.Status.ToString());
        activity?.SetTag("mailmesh.dns.cache_hit", fromCache);
        if (lookup.Status == MxStatus.TemporaryFailure)
        {
            activity?.SetStatus(ActivityStatusCode.Error, lookup.Error);
        }

        return new MxResolved
        {
            Domain = domain,
            Status = lookup.Status,
            Hosts = lookup.Status == MxStatus.Ok ? ShuffleEqualPreferences(lookup.Hosts) : [],
            Error = lookup.Error,
            FromCache = fromCache,
            TimeToLive = timeToLive > TimeSpan.Zero ? timeToLive : TimeSpan.Zero,
        };
    }

    /// <summary>RFC 5321 §5.1: hosts are sorted by preference; hosts of equal preference are tried in random order.</summary>
    internal static IReadOnlyList<MxHost> ShuffleEqualPreferences(IReadOnlyList<MxHost> sorted) => MxHostOrder.ShuffleEqualPreferences(sorted);

    private static bool TryNormalize(string domain, out string key)
    {
        key = domain.Trim().TrimEnd('.');
        if (key.Length == 0)
        {
            return false;
        }

        if (!Ascii.IsValid(key))
        {
            // RFC 6531 §3.2 / RFC 5890: internationalised domains are looked up by their A-labels.
            try
            {
                key = NormalizedAddress.NormalizeDomain(key);
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        key = key.ToLowerInvariant();

        // RFC 1035 §2.3.4: names are at most 253 octets as text, labels 1..63.
        return key.Length <= 253 && key.Split('.').All(label => label.Length is > 0 and <= 63);
    }

    private bool TryGetCached(string key, out Lookup lookup) => TryGetCached(key, out lookup, out _);

    private bool TryGetCached(string key, out Lookup lookup, out DateTimeOffset expiresAt)
    {
        if (_cache.TryGetValue(key, out var entry))
        {
            if (entry.ExpiresAt > _time.GetUtcNow())
            {
                lookup = entry.Lookup;
                expiresAt = entry.ExpiresAt;
                return true;
            }

            _cache.TryRemove(KeyValuePair.Create(key, entry));
        }

        lookup = null!;
        expiresAt = default;
        return false;
    }

    private async Task<Lookup> LookupAndCacheAsync(string key)
    {
        // A lookup that finished while this caller was between the cache check and joining the in-flight task.
        if (TryGetCached(key, out var cached))
        {
            return cached;
        }

        Lookup lookup;
        try
        {
            lookup = await LookupAsync(key, _shutdown.Token);
        }
        catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            DnsLog.Unexpected(_logger, key, ex);
            lookup = new Lookup(MxStatus.TemporaryFailure, [], "DNS lookup failed: " + ex.Message, _options.TemporaryFailureTtl);
        }

        DnsLog.Resolved(_logger, key, lookup.Status.ToString(), lookup.Hosts.Count, lookup.Ttl);
        if (lookup.Ttl > TimeSpan.Zero)
        {
            _cache[key] = new CacheEntry(lookup, _time.GetUtcNow() + lookup.Ttl);
            if (_cache.Count > _options.MaxCacheEntries)
            {
                Evict();
            }
        }

        return lookup;
    }

    private async Task<Lookup> LookupAsync(string domain, CancellationToken cancellationToken)
    {
        var mx = await QueryAsync(domain, QueryType.MX, cancellationToken);
        switch (mx.Outcome)
        {
            case Outcome.NxDomain:
                return new Lookup(MxStatus.NoSuchDomain, [], $"{domain}: no such domain (NXDOMAIN)", NegativeTtl(mx));
            case Outcome.TemporaryFailure:
                return new Lookup(MxStatus.TemporaryFailure, [], $"{domain}: MX lookup failed: {mx.Error}", _options.TemporaryFailureTtl);
        }

        var records = mx.Response!.Answers.MxRecords().ToList();
        if (records.Count == 0)
        {
            return await ImplicitMxAsync(domain, NegativeTtl(mx), cancellationToken);
        }

        // RFC 7505 §3: a single MX with an empty exchange (".") says the domain accepts no mail. A null MX mixed
        // with real exchangers is a misconfiguration (§4.3 forbids it): the real ones are used and "." is skipped.
        var usable = records.Where(r => !IsRoot(r.Exchange)).ToList();
        if (usable.Count == 0)
        {
            return new Lookup(MxStatus.NullMx, [], $"{domain}: null MX (RFC 7505), the domain accepts no mail", Clamp(TimeSpan.FromSeconds(records.Min(r => r.TimeToLive))));
        }

        var ttl = TimeSpan.FromSeconds(usable.Min(r => r.TimeToLive));
        var exchangers = usable
            .GroupBy(r => Normalize(r.Exchange), StringComparer.Ordinal)
            .Select(g => (Name: g.Key, Preference: (int)g.Min(r => r.Preference)))
            .OrderBy(e => e.Preference)
            .ToList();

        var resolved = await Task.WhenAll(exchangers.Select(e => ResolveAddressesAsync(e.Name, cancellationToken)));
        var hosts = new List<MxHost>(exchangers.Count);
        var temporary = new List<string>();
        for (var i = 0; i < exchangers.Count; i++)
        {
            var addresses = resolved[i];
            if (addresses.Addresses.Count > 0)
            {
                hosts.Add(new MxHost { Name = exchangers[i].Name, Preference = exchangers[i].Preference, Addresses = addresses.Addresses });
                ttl = Min(ttl, addresses.Ttl);
            }

            if (addresses.Error is not null)
            {
                temporary.Add(addresses.Error);
            }
        }

        if (hosts.Count == 0)
        {
            // No exchanger has an address yet. Treated as temporary (the contract's TemporaryFailure): a missing A
            // record for an MX host is usually a DNS change in progress, and Queue's maximum age bounds the retries.
            var error = $"{domain}: no address for any exchanger ({string.Join("; ", temporary.DefaultIfEmpty("no A/AAAA records"))})";
            return new Lookup(MxStatus.TemporaryFailure, [], error, _options.TemporaryFailureTtl);
        }

        // Hosts whose lookup failed temporarily are missing from this answer: keep it only briefly.
        var lifetime = Clamp(ttl);
        if (resolved.Any(r => r.Temporary))
        {
            lifetime = Min(lifetime, _options.TemporaryFailureTtl);
        }

        return new Lookup(MxStatus.Ok, hosts, null, lifetime);
    }

    /// <summary>RFC 5321 §5.1: with no MX records, the domain itself is the implicit exchanger, preference 0.</summary>
    private async Task<Lookup> ImplicitMxAsync(string domain, TimeSpan negativeTtl, CancellationToken cancellationToken)
    {
        var addresses = await ResolveAddressesAsync(domain, cancellationToken);
        if (addresses.Addresses.Count > 0)
        {
            var lifetime = Clamp(addresses.Ttl);
            if (addresses.Temporary)
            {
                lifetime = Min(lifetime, _options.TemporaryFailureTtl);
            }

            return new Lookup(MxStatus.Ok, [new MxHost { Name = domain, Preference = 0, Addresses = addresses.Addresses }], null, lifetime);
        }

        if (addresses.Temporary)
        {
            return new Lookup(MxStatus.TemporaryFailure, [], $"{domain}: address lookup failed: {addresses.Error}", _options.TemporaryFailureTtl);
        }

        return new Lookup(MxStatus.NoSuchDomain, [], $"{domain}: no MX and no A/AAAA records", negativeTtl);
    }

    /// <summary>A and AAAA of one host, queried in parallel, ordered per <see cref="DnsOptions.PreferIPv6"/>.</summary>
    private async Task<HostAddresses> ResolveAddressesAsync(string host, CancellationToken cancellationToken)
    {
        var a = QueryAsync(host, QueryType.A, cancellationToken);
        var aaaa = QueryAsync(host, QueryType.AAAA, cancellationToken);
        var v4 = await a;
        var v6 = await aaaa;

        var ipv4 = v4.Outcome == Outcome.Answer ? v4.Response!.Answers.ARecords().ToList() : [];
        var ipv6 = v6.Outcome == Outcome.Answer ? v6.Response!.Answers.AaaaRecords().ToList() : [];
        var ttl = _options.MaxTtl;
        foreach (var record in ipv4.Cast<DnsResourceRecord>().Concat(ipv6))
        {
            ttl = Min(ttl, TimeSpan.FromSeconds(record.TimeToLive));
        }

        IEnumerable<IPAddress> v4Addresses = ipv4.Select(r => r.Address);
        IEnumerable<IPAddress> v6Addresses = ipv6.Select(r => r.Address);
        var ordered = _options.PreferIPv6 ? v6Addresses.Concat(v4Addresses) : v4Addresses.Concat(v6Addresses);
        var addresses = ordered.Distinct().Select(ip => ip.ToString()).ToList();

        var errors = new[] { v4, v6 }.Where(r => r.Outcome == Outcome.TemporaryFailure).Select(r => r.Error).ToList();
        return new HostAddresses(addresses, ttl, errors.Count > 0, errors.Count > 0 ? $"{host}: {string.Join("; ", errors)}" : null);
    }

    private async Task<QueryResult> QueryAsync(string name, QueryType type, CancellationToken cancellationToken)
    {
        var typeName = type.ToString();
        var started = _time.GetTimestamp();
        QueryResult result;
        try
        {
            var response = await _client.QueryAsync(name, type, QueryClass.IN, cancellationToken);
            result = response.Header.ResponseCode switch
            {
                DnsHeaderResponseCode.NoError => new QueryResult(response.Answers.Count > 0 ? Outcome.Answer : Outcome.NoData, response, null),
                DnsHeaderResponseCode.NotExistentDomain => new QueryResult(Outcome.NxDomain, response, null),
                _ => new QueryResult(Outcome.TemporaryFailure, response, DescribeError(response)),
            };
        }
        catch (DnsResponseException ex)
        {
            result = new QueryResult(
                Outcome.TemporaryFailure,
                null,
                ex.Code == DnsResponseCode.ConnectionTimeout ? $"timed out after {_options.Retries + 1} attempt(s)" : ex.Message);
        }
        catch (SocketException ex)
        {
            result = new QueryResult(Outcome.TemporaryFailure, null, ex.Message);
        }

        var outcome = result.Outcome switch
        {
            Outcome.Answer => "answer",
            Outcome.NoData => "nodata",
            Outcome.NxDomain => "nxdomain",
            _ => result.Error?.Contains("timed out", StringComparison.Ordinal) == true ? "timeout" : "servfail",
        };
        _metrics.Lookup(typeName, outcome, _time.GetElapsedTime(started));
        if (result.Outcome == Outcome.TemporaryFailure)
        {
            DnsLog.TemporaryFailure(_logger, typeName, name, result.Error ?? "unknown");
        }

        return result;
    }

    private static string DescribeError(IDnsQueryResponse response) =>
        response.Header.ResponseCode switch
        {
            DnsHeaderResponseCode.ServerFailure => "SERVFAIL",
            DnsHeaderResponseCode.Refused => "REFUSED",
            var code => string.IsNullOrEmpty(response.ErrorMessage) ? code.ToString() : response.ErrorMessage,
        };

    /// <summary>RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM); without an SOA, the configured TTL.</summary>
    private TimeSpan NegativeTtl(QueryResult result)
    {
        var soa = result.Response?.Authorities.SoaRecords().FirstOrDefault();
        var ttl = soa is null
            ? _options.NegativeTtl
            : Min(TimeSpan.FromSeconds(Math.Min((long)soa.TimeToLive, soa.Minimum)), _options.NegativeTtl);
        return Min(ttl, _options.MaxTtl);
    }

    private TimeSpan Clamp(TimeSpan ttl) =>
        ttl < _options.MinTtl ? _options.MinTtl : ttl > _options.MaxTtl ? _options.MaxTtl : ttl;

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static bool IsRoot(DnsString name) => name.Value is "." or "";

    private static string Normalize(DnsString name) => name.Value.TrimEnd('.').ToLowerInvariant();

    private void Evict()
    {
        if (!_evictionGate.TryEnter())
        {
            return;
        }

        try
        {
            var now = _time.GetUtcNow();
            var evicted = 0;
            foreach (var pair in _cache)
            {
                if (pair.Value.ExpiresAt <= now && _cache.TryRemove(pair))
                {
                    evicted++;
                }
            }

            // Still full: drop the entries closest to expiry, down to 90% so eviction is not run on every insert.
            var target = _options.MaxCacheEntries - Math.Max(1, _options.MaxCacheEntries / 10);
            if (_cache.Count > target)
            {
                foreach (var pair in _cache.OrderBy(p => p.Value.ExpiresAt).Take(_cache.Count - target).ToList())
                {
                    if (_cache.TryRemove(pair))
                    {
                        evicted++;
                    }
                }
            }

            DnsLog.Evicted(_logger, _options.MaxCacheEntries, evicted);
        }
        finally
        {
            _evictionGate.Exit();
        }
    }

    public void Dispose()
    {
        _shutdown.Cancel();
        _shutdown.Dispose();
    }

    private enum Outcome
    {
        Answer,
        NoData,
        NxDomain,
        TemporaryFailure,
    }

    private sealed record QueryResult(Outcome Outcome, IDnsQueryResponse? Response, string? Error);

    private sealed record HostAddresses(IReadOnlyList<string> Addresses, TimeSpan Ttl, bool Temporary, string? Error);

    private sealed record CacheEntry(Lookup Lookup, DateTimeOffset ExpiresAt);

    internal sealed record Lookup(MxStatus Status, IReadOnlyList<MxHost> Hosts, string? Error, TimeSpan Ttl);
}
