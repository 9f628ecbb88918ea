using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ARSoft.Tools.Net;
using ARSoft.Tools.Net.Dns;
using MailMesh.Policy.Spf;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Dnsbl;

/// <summary>What the lists say about one client: the summed weight and the zones that listed it.</summary>
internal sealed record DnsblResult(double Score, IReadOnlyList<string> Listed, bool Refused)
{
    public static DnsblResult NotListed { get; } = new(0, [], false);
}

/// <summary>
/// DNSBL/DNSWL lookups (RFC 5782): the client's IPv4 octets reversed (192.0.2.99 → 99.2.0.192.zone) or IPv6 nibbles
/// reversed (32 labels), an A query in each configured zone at once, over the configured resolvers. An answer that
/// matches the zone's reply codes adds its weight; the client is refused when the sum reaches the threshold. Answers
/// are cached for their TTL (the SOA's negative TTL for NXDOMAIN), bounded by <see cref="DnsblOptions.MaxCacheDuration"/>.
/// </summary>
/// <remarks>A zone that fails (timeout, SERVFAIL, refused, a 127.255.255.x error answer) is not counted, logged and
/// counted as an error: a DNS failure never refuses a client. Failures are not cached.</remarks>
internal sealed class DnsblChecker : IDisposable
{
    /// <summary>When a negative answer carries no SOA, it is reused this long.</summary>
    internal static readonly TimeSpan DefaultNegativeTtl = TimeSpan.FromMinutes(5);

    private readonly DnsblOptions _options;
    private readonly TimeProvider _time;
    private readonly PolicyMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly ARSoft.Tools.Net.Dns.DnsClient _dns;
    private readonly bool _ownsClient;
    private readonly (DnsblZone Zone, IReadOnlySet<IPAddress> Codes)[] _zones;
    private readonly ConcurrentDictionary<string, (bool Listed, DateTimeOffset Expires)> _cache = new(StringComparer.Ordinal);
    private int _queries;

    public DnsblChecker(IOptions<DnsblOptions> options, TimeProvider time, ILogger<DnsblChecker> logger, PolicyMetrics? metrics = null)
    {
        _options = options.Value;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _zones = [.. _options.Zones.Select(z => (z, z.ParsedReplyCodes))];
        var servers = SpfOptions.ParseServers(_options.DnsServers, DnsblOptions.SectionName + ":DnsServers");
        var timeoutMs = (int)Math.Clamp(_options.Timeout.TotalMilliseconds, 1, int.MaxValue);
        if (servers.Count == 0)
        {
            _dns = ARSoft.Tools.Net.Dns.DnsClient.Default;
        }
        else
        {
            _dns = new ARSoft.Tools.Net.Dns.DnsClient(servers.Select(s => s.Address), [new UdpClientTransport(servers[0].Port), new TcpClientTransport(servers[0].Port)], false, timeoutMs);
            _ownsClient = true;
        }
    }

    public bool Enabled => _options.Enabled && _zones.Length > 0;

    /// <summary>Queries that reached DNS (not served from the cache), for tests.</summary>
    public int Queries => Volatile.Read(ref _queries);

    public async Task<DnsblResult> CheckAsync(IPAddress client, CancellationToken cancellationToken)
    {
        if (client.IsIPv4MappedToIPv6)
        {
            client = client.MapToIPv4();
        }

        if (!Enabled)
        {
            return DnsblResult.NotListed;
        }

        using var activity = PolicyTelemetry.Source.StartActivity("policy.dnsbl", ActivityKind.Client);
        var reversed = Reverse(client);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        var answers = await Task.WhenAll(_zones.Select(z => IsListedAsync(reversed, z.Zone, z.Codes, timeout.Token)));
        cancellationToken.ThrowIfCancellationRequested();

        var listed = new List<string>();
        double score = 0;
        for (var i = 0; i < _zones.Length; i++)
        {
            if (answers[i] == true)
            {
                score += _zones[i].Zone.Weight;
                listed.Add(_zones[i].Zone.Zone);
            }
        }

        var refused = listed.Count > 0 && score >= _options.Threshold;
        activity?.SetTag("mailmesh.dnsbl.score", score);
        activity?.SetTag("mailmesh.dnsbl.listed", string.Join(',', listed));
        if (refused)
        {
            _logger.DnsblListed(client.ToString(), string.Join(", ", listed), score, _options.Threshold);
        }

        return new DnsblResult(score, listed, refused);
    }

    /// <summary>The RFC 5782 §2.1 / §2.4 query name prefix: reversed octets, or reversed nibbles for IPv6.</summary>
    internal static string Reverse(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        var name = new StringBuilder();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            for (var i = bytes.Length - 1; i >= 0; i--)
            {
                name.Append(bytes[i].ToString(CultureInfo.InvariantCulture)).Append('.');
            }
        }
        else
        {
            const string hex = "0123456789abcdef";
            for (var i = bytes.Length - 1; i >= 0; i--)
            {
                name.Append(hex[bytes[i] & 0xF]).Append('.').Append(hex[bytes[i] >> 4]).Append('.');
            }
        }

        return name.ToString(0, name.Length - 1);
    }

    /// <summary>True listed, false not listed, null failed.</summary>
    private async Task<bool?> IsListedAsync(string reversed, DnsblZone zone, IReadOnlySet<IPAddress> codes, CancellationToken cancellationToken)
    {
        var query = reversed + "." + zone.Zone.TrimEnd('.').ToLowerInvariant();
        var now = _time.GetUtcNow();
        if (_cache.TryGetValue(query, out var cached) && now < cached.Expires)
        {
            return cached.Listed;
        }

        Interlocked.Increment(ref _queries);
        DnsMessage? answer;
        try
        {
            answer = await _dns.ResolveAsync(DomainName.Parse(query), RecordType.A, RecordClass.INet, null, cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or SocketException or IOException)
        {
            return Failed(zone, query, "timeout");
        }

        if (answer is null)
        {
            return Failed(zone, query, "no answer");
        }

        bool listed;
        TimeSpan ttl;
        if (answer.ReturnCode == ReturnCode.NxDomain || (answer.ReturnCode == ReturnCode.NoError && !answer.AnswerRecords.OfType<ARecord>().Any()))
        {
            listed = false;
            var soa = answer.AuthorityRecords.OfType<SoaRecord>().FirstOrDefault();
            ttl = soa is null ? DefaultNegativeTtl : TimeSpan.FromSeconds(Math.Min(soa.TimeToLive, soa.NegativeCachingTTL));
        }
        else if (answer.ReturnCode == ReturnCode.NoError)
        {
            var records = answer.AnswerRecords.OfType<ARecord>().ToList();
            if (codes.Count == 0 && records.All(r => IsErrorCode(r.Address)))
            {
                // Spamhaus and others answer 127.255.255.x to a resolver they refuse: an error, not a listing.
                return Failed(zone, query, "error answer " + records[0].Address);
            }

            listed = records.Any(r => codes.Count == 0 ? IsListingCode(r.Address) : codes.Contains(r.Address));
            ttl = TimeSpan.FromSeconds(records.Min(r => r.TimeToLive));
        }
        else
        {
            return Failed(zone, query, answer.ReturnCode.ToString());
        }

        _metrics?.DnsblLookup(zone.Zone, listed ? "listed" : "not_listed");
        ttl = ttl < _options.MaxCacheDuration ? ttl : _options.MaxCacheDuration;
        if (ttl > TimeSpan.Zero)
        {
            if (_cache.Count >= _options.MaxCacheEntries)
            {
                Prune(now);
            }

            _cache[query] = (listed, now + ttl);
        }

        return listed;
    }

    private bool? Failed(DnsblZone zone, string query, string problem)
    {
        _metrics?.DnsblLookup(zone.Zone, "error");
        _logger.DnsblLookupFailed(query, problem);
        return null;
    }

    private static bool IsErrorCode(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return bytes.Length == 4 && bytes[0] == 127 && bytes[1] == 255 && bytes[2] == 255;
    }

    private static bool IsListingCode(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return bytes.Length == 4 && bytes[0] == 127 && !IsErrorCode(address);
    }

    private void Prune(DateTimeOffset now)
    {
        foreach (var entry in _cache)
        {
            if (now >= entry.Value.Expires)
            {
                _cache.TryRemove(entry);
            }
        }

        if (_cache.Count >= _options.MaxCacheEntries)
        {
            _cache.Clear();
        }
    }

    public void Dispose()
    {
        _cache.Clear();
        if (_ownsClient)
        {
            (_dns as IDisposable)?.Dispose();
        }
    }
}
