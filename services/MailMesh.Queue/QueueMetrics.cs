using System.Diagnostics;
using System.Diagnostics.Metrics;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;

namespace MailMesh.Queue;

/// <summary>The Queue service's instruments (meter "MailMesh.Queue"); every one is listed in docs/telemetry.md.</summary>
internal sealed class QueueMetrics
{
    public const string MeterName = Telemetry.Prefix + ".Queue";

    /// <summary>The recipient state tag of mailmesh.queue.depth and mailmesh.queue.recipients.completed.</summary>
    public const string StateTag = "mailmesh.recipient.state";

    /// <summary>The spool is asked for its depth at most this often, however often the gauge is scraped.</summary>
    internal static readonly TimeSpan DepthMaxAge = TimeSpan.FromSeconds(5);

    private readonly ISpool _spool;
    private readonly TimeProvider _time;
    private readonly Counter<long> _claimed;
    private readonly Counter<long> _completed;
    private readonly Counter<long> _dsnGenerated;
    private readonly Counter<long> _suppressed;
    private readonly Histogram<double> _latency;
    private readonly Counter<long> _resultsApplied;
    private readonly Counter<long> _resultsFailed;
    private readonly Counter<long> _expiredAtClaim;
    private readonly Counter<long> _leasesExtended;
    private DepthSnapshot? _depth;
    private int _refreshing;

    public QueueMetrics(IMeterFactory meterFactory, ISpool spool, TimeProvider time)
    {
        _spool = spool;
        _time = time;
        var meter = meterFactory.Create(MeterName);
        meter.CreateObservableGauge("mailmesh.queue.depth", ObserveDepth, "{recipient}",
            "Recipients in the spool by state (sampled at most every 5 s).");
        _claimed = meter.CreateCounter<long>("mailmesh.queue.claimed", "{recipient}",
            "Recipients claimed for a delivery attempt.");
        _completed = meter.CreateCounter<long>("mailmesh.queue.recipients.completed", "{recipient}",
            "Attempt results applied to recipients, by the state they reached (delivered, deferred, bounced, expired) and mailmesh.bounce.class.");
        _dsnGenerated = meter.CreateCounter<long>("mailmesh.queue.dsn.generated", "{message}",
            "Delivery status notifications queued to senders, by kind (failure, delay, success).");
        _suppressed = meter.CreateCounter<long>("mailmesh.queue.recipients.suppressed", "{recipient}",
            "Recipients added to the suppression list after a hard bounce (a class of Queue:SuppressBounceClasses).");
        _resultsApplied = meter.CreateCounter<long>("mailmesh.queue.results.applied", "{result}",
            "Recorded attempt results applied from the spool's outbox (states, DSNs, suppressions) and deleted.");
        _resultsFailed = meter.CreateCounter<long>("mailmesh.queue.results.failed", "{result}",
            "Tries to apply a recorded result that failed; the result stays in the outbox and is tried again.");
        _expiredAtClaim = meter.CreateCounter<long>("mailmesh.queue.claim.expired", "{recipient}",
            "Recipients claimed after Queue:MaxAge and expired at once instead of being attempted.");
        _leasesExtended = meter.CreateCounter<long>("mailmesh.queue.leases.extended", "{recipient}",
            "In-flight recipients whose lease was extended by a stop of the lease clock (no scheduler reached the spool).");
        _latency = meter.CreateHistogram<double>("mailmesh.delivery.latency", "s",
            "Time from acceptance by MailMesh to acceptance by the destination.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400] });
    }

    public void Claimed(int recipients) => _claimed.Add(recipients);

    public void LeasesExtended(int recipients) => _leasesExtended.Add(recipients);

    public void ResultApplied() => _resultsApplied.Add(1);

    public void ResultFailed() => _resultsFailed.Add(1);

    public void ExpiredAtClaim(int recipients) => _expiredAtClaim.Add(recipients);

    public void Suppressed() => _suppressed.Add(1);

    /// <summary>Tag of a result's bounce class (the class names of <c>BounceClass</c>); absent for deliveries.</summary>
    public const string ClassTag = "mailmesh.bounce.class";

    public void Completed(RecipientState state, string? bounceClass = null)
    {
        if (bounceClass is null)
        {
            _completed.Add(1, new KeyValuePair<string, object?>(StateTag, StateName(state)));
        }
        else
        {
            _completed.Add(1, new KeyValuePair<string, object?>(StateTag, StateName(state)), new KeyValuePair<string, object?>(ClassTag, bounceClass));
        }
    }

    public void DsnGenerated(string kind) =>
        _dsnGenerated.Add(1, new KeyValuePair<string, object?>("mailmesh.dsn.kind", kind));

    public void Delivered(TimeSpan sinceReceived) => _latency.Record(Math.Max(0, sinceReceived.TotalSeconds));

    internal static string StateName(RecipientState state) => state switch
    {
        RecipientState.Queued => "queued",
        RecipientState.InFlight => "in_flight",
        RecipientState.Deferred => "deferred",
        RecipientState.Delivered => "delivered",
        RecipientState.Bounced => "bounced",
        RecipientState.Expired => "expired",
        RecipientState.Suppressed => "suppressed",
        RecipientState.Held => "held",
        _ => "unknown",
    };

    private IEnumerable<Measurement<long>> ObserveDepth()
    {
        var snapshot = Volatile.Read(ref _depth);
        if ((snapshot is null || _time.GetUtcNow() - snapshot.At >= DepthMaxAge) && Interlocked.CompareExchange(ref _refreshing, 1, 0) == 0)
        {
            // Observable callbacks are synchronous: refresh in the background and report the last sample meanwhile,
            // so a scrape never waits on the database and never asks it more than every few seconds.
            _ = RefreshDepthAsync();
        }

        if (snapshot is null)
        {
            yield break;
        }

        foreach (var state in Enum.GetValues<RecipientState>())
        {
            yield return new Measurement<long>(snapshot.Counts.GetValueOrDefault(state), new KeyValuePair<string, object?>(StateTag, StateName(state)));
        }
    }

    private async Task RefreshDepthAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30), _time);
            var counts = await _spool.CountByStateAsync(timeout.Token);
            Volatile.Write(ref _depth, new DepthSnapshot(_time.GetUtcNow(), counts));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The readiness check reports an unreachable store; the gauge keeps its last sample.
            Activity.Current?.AddException(ex);
        }
        finally
        {
            Volatile.Write(ref _refreshing, 0);
        }
    }

    private sealed record DepthSnapshot(DateTimeOffset At, IReadOnlyDictionary<RecipientState, long> Counts);
}
