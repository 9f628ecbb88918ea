using System.Diagnostics;
using System.Diagnostics.Metrics;
using MailMesh.ServiceDefaults;

namespace MailMesh.Dns;

/// <summary>The Dns service's instruments (meter "MailMesh.Dns") and its ActivitySource.</summary>
internal sealed class DnsMetrics
{
    public const string MeterName = Telemetry.Prefix + ".Dns";

    /// <summary>Spans of lookups; one per <c>ResolveMx</c> answered.</summary>
    public static readonly ActivitySource ActivitySource = new(MeterName);

    private readonly Counter<long> _lookups;
    private readonly Counter<long> _cacheHits;
    private readonly Counter<long> _cacheMisses;
    private readonly Histogram<double> _lookupDuration;

    public DnsMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _lookups = meter.CreateCounter<long>(
            "mailmesh.dns.lookups", "{lookup}", "DNS queries sent to the resolvers, by question type and outcome.");
        _cacheHits = meter.CreateCounter<long>(
            "mailmesh.dns.cache.hits", "{lookup}", "MX resolutions answered from the cache.");
        _cacheMisses = meter.CreateCounter<long>(
            "mailmesh.dns.cache.misses", "{lookup}", "MX resolutions that needed the resolvers.");
        _lookupDuration = meter.CreateHistogram<double>(
            "mailmesh.dns.lookup.duration", "s", "Duration of one DNS query to the resolvers.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
    }

    public void Lookup(string questionType, string outcome, TimeSpan duration)
    {
        var tags = new TagList { { "dns.question.type", questionType }, { "mailmesh.dns.outcome", outcome } };
        _lookups.Add(1, tags);
        _lookupDuration.Record(duration.TotalSeconds, tags);
    }

    public void CacheHit() => _cacheHits.Add(1);

    public void CacheMiss() => _cacheMisses.Add(1);
}
