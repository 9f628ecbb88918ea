using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>One policy's outcomes in one UTC day (RFC 8460 §4.4 "policies" entry), as counted so far.</summary>
internal sealed record TlsReportKey(DateOnly Day, string PolicyDomain, string PolicyType, string PolicyStrings);

/// <summary>One failure detail (RFC 8460 §4.4 "failure-details"): result type, hosts, and a free-text reason.</summary>
internal sealed record TlsFailureKey(string ResultType, string? ReceivingMxHostname, string? ReceivingIp, string? AdditionalInformation);

/// <summary>Counts to add to the aggregate for one key.</summary>
internal sealed record TlsReportIncrement(TlsReportKey Key, long Successes, IReadOnlyDictionary<TlsFailureKey, long> Failures);

/// <summary>
/// Counts TLS outcomes per policy domain in memory (no I/O on the delivery path); the flusher adds
/// them to the shared aggregate in the spool, so every replica's sessions end up in one report (RFC 8460 §4.1).
/// </summary>
internal sealed class TlsReportRecorder(IOptions<DeliveryOptions> options, TimeProvider time)
{
    private ConcurrentDictionary<TlsReportKey, Counter> _pending = new();

    public bool IsEnabled { get; } = options.Value.Tls.Reporting.Enabled;

    public void Success(string domain, string policyType, IReadOnlyList<string> policyStrings)
    {
        if (IsEnabled)
        {
            Interlocked.Increment(ref CounterFor(domain, policyType, policyStrings).Successes);
        }
    }

    public void Failure(
        string domain, string policyType, IReadOnlyList<string> policyStrings, string resultType, string? mxHost, string? receivingIp, string? detail)
    {
        if (IsEnabled)
        {
            var failure = new TlsFailureKey(resultType, mxHost, receivingIp, detail is { Length: > 200 } ? detail[..200] : detail);
            CounterFor(domain, policyType, policyStrings).Failures.AddOrUpdate(failure, 1, (_, n) => n + 1);
        }
    }

    /// <summary>Everything counted since the last call (the counters start again from zero).</summary>
    public IReadOnlyList<TlsReportIncrement> TakePending()
    {
        var taken = Interlocked.Exchange(ref _pending, new ConcurrentDictionary<TlsReportKey, Counter>());
        return taken.Select(p => new TlsReportIncrement(p.Key, Volatile.Read(ref p.Value.Successes), p.Value.Failures.ToDictionary())).ToList();
    }

    /// <summary>Puts back increments a failed flush could not store (they go with the next one).</summary>
    public void Restore(IEnumerable<TlsReportIncrement> increments)
    {
        foreach (var increment in increments)
        {
            var counter = _pending.GetOrAdd(increment.Key, static _ => new Counter());
            Interlocked.Add(ref counter.Successes, increment.Successes);
            foreach (var (failure, count) in increment.Failures)
            {
                counter.Failures.AddOrUpdate(failure, count, (_, n) => n + count);
            }
        }
    }

    private Counter CounterFor(string domain, string policyType, IReadOnlyList<string> policyStrings)
    {
        var key = new TlsReportKey(DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime), domain.TrimEnd('.').ToLowerInvariant(), policyType,
            string.Join('\n', policyStrings));
        return _pending.GetOrAdd(key, static _ => new Counter());
    }

    private sealed class Counter
    {
        public long Successes;

        public ConcurrentDictionary<TlsFailureKey, long> Failures { get; } = new();
    }
}
