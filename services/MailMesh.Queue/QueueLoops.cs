using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// Every background loop of Queue proves it is alive: each completed round is recorded here, and a loop that has not
/// completed one for <see cref="QueueOptions.StalledAfter"/> fails readiness (<c>/readyz</c>) and shows in
/// <c>mailmesh.queue.scheduler.last_round_age</c>. A loop that stops silently is an outage with a green health check.
/// </summary>
internal sealed class QueueLoopMonitor : IHealthCheck
{
    /// <summary>The tag naming the loop on the scheduler instruments.</summary>
    public const string LoopTag = "mailmesh.queue.loop";

    private readonly ConcurrentDictionary<string, LoopState> _loops = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly QueueOptions _options;
    private readonly Counter<long> _rounds;

    public QueueLoopMonitor(IMeterFactory meterFactory, TimeProvider time, IOptions<QueueOptions> options)
    {
        _time = time;
        _options = options.Value;
        var meter = meterFactory.Create(QueueMetrics.MeterName);
        _rounds = meter.CreateCounter<long>("mailmesh.queue.scheduler.rounds", "{round}",
            "Rounds of Queue's background loops (claim, results) by outcome (ok, failed).");
        meter.CreateObservableGauge("mailmesh.queue.scheduler.last_round_age", ObserveAges, "s",
            "Seconds since each background loop (claim, results) last completed a round; grows without bound when a loop stalls.");
    }

    /// <summary>A loop starts: it counts as stalled if it does not complete a round within StalledAfter from now.</summary>
    public void Started(string loop) => _loops[loop] = new LoopState(_time.GetUtcNow(), Completed: false);

    public void Completed(string loop)
    {
        _loops[loop] = new LoopState(_time.GetUtcNow(), Completed: true);
        _rounds.Add(1, new KeyValuePair<string, object?>(LoopTag, loop), new KeyValuePair<string, object?>("outcome", "ok"));
    }

    public void Failed(string loop) =>
        _rounds.Add(1, new KeyValuePair<string, object?>(LoopTag, loop), new KeyValuePair<string, object?>("outcome", "failed"));

    /// <summary>How long since <paramref name="loop"/> last completed a round (or started, if it never did); null if unknown.</summary>
    public TimeSpan? Age(string loop) => _loops.TryGetValue(loop, out var state) ? _time.GetUtcNow() - state.At : null;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var stalled = _loops
            .Where(pair => _time.GetUtcNow() - pair.Value.At > _options.StalledAfter)
            .Select(pair => pair.Value.Completed
                ? $"{pair.Key}: no round completed for {_time.GetUtcNow() - pair.Value.At:g}"
                : $"{pair.Key}: no round completed since it started {_time.GetUtcNow() - pair.Value.At:g} ago")
            .ToList();
        return Task.FromResult(stalled.Count == 0
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy(string.Join("; ", stalled)));
    }

    private IEnumerable<Measurement<double>> ObserveAges()
    {
        var now = _time.GetUtcNow();
        foreach (var (loop, state) in _loops)
        {
            yield return new Measurement<double>(Math.Max(0, (now - state.At).TotalSeconds), new KeyValuePair<string, object?>(LoopTag, loop));
        }
    }

    private sealed record LoopState(DateTimeOffset At, bool Completed);
}

/// <summary>Timeouts and back-off shared by Queue's loops.</summary>
internal static class Bounded
{
    /// <summary>
    /// Runs <paramref name="operation"/> with a token cancelled after <paramref name="timeout"/>, and stops waiting for
    /// it at that time even if it ignores the token: no await of a loop can hang on a database or broker that does not
    /// answer. Throws <see cref="TimeoutException"/> naming <paramref name="what"/>.
    /// </summary>
    public static async Task<T> RunAsync<T>(
        Func<CancellationToken, Task<T>> operation, string what, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        using var timer = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        try
        {
            return await operation(linked.Token).WaitAsync(timeout, time, cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{what} did not complete within {timeout}", ex);
        }
    }

    public static Task RunAsync(Func<CancellationToken, Task> operation, string what, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken) =>
        RunAsync(async token =>
        {
            await operation(token);
            return true;
        }, what, timeout, time, cancellationToken);

    /// <summary>
    /// The wait before retrying after <paramref name="failures"/> consecutive failed rounds: <paramref name="first"/> ×
    /// 2^(failures - 1), capped at <paramref name="max"/>, then scaled by a random factor in [0.5, 1] so replicas that
    /// failed together (a database restart) do not all come back at one instant.
    /// </summary>
    public static TimeSpan Backoff(int failures, TimeSpan first, TimeSpan max)
    {
        var exponent = Math.Clamp(failures - 1, 0, 20);
        var delay = TimeSpan.FromTicks((long)Math.Min(max.Ticks, first.Ticks * Math.Pow(2, exponent)));
#pragma warning disable CA5394 // Jitter, not security.
        return delay * (0.5 + (Random.Shared.NextDouble() / 2));
#pragma warning restore CA5394
    }
}
