using System.Text.Json;
using MailMesh.Contracts;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>Wakes the <see cref="ResultApplier"/> before its poll interval ends (a result was recorded here).</summary>
internal sealed class ResultSignal
{
    public SchedulerSignal Signal { get; } = new();

    public void Poke() => Signal.Poke();
}

/// <summary>The outbox payload: a <see cref="DeliveryAttempted"/> as System.Text.Json writes it with default options.</summary>
internal static class ResultPayload
{
    public static PendingResult ToPending(DeliveryAttempted attempt) => new()
    {
        LeaseId = attempt.LeaseId,
        MessageId = attempt.MessageId,
        RecipientIds = [.. attempt.Results.Select(r => r.RecipientId)],
        Payload = JsonSerializer.Serialize(attempt),
        TraceParent = ServiceDefaults.Telemetry.CurrentTraceParent(),
    };

    public static DeliveryAttempted Read(PendingResult result) =>
        JsonSerializer.Deserialize<DeliveryAttempted>(result.Payload) ?? throw new JsonException("null result payload");
}

/// <summary>
/// The outbox sweeper: applies the results recorded in the spool (<see cref="ISpool.ClaimResultsAsync"/>) in
/// batches, each with <see cref="DeliveryAttemptedConsumer.ApplyAsync"/>, and deletes a result only after its
/// states, DSNs and suppressions are stored. A result whose application fails (the database restarts half-way) stays
/// and is handed out again with back-off, so a PostgreSQL outage in that window cannot lose a bounce notice. Any
/// number of Queue replicas may run it; every await is bounded and a failed round is retried with back-off.
/// </summary>
internal sealed class ResultApplier(
    ISpool spool,
    IServiceScopeFactory scopes,
    ResultSignal signal,
    SchedulerSignal scheduler,
    QueueLoopMonitor monitor,
    QueueMetrics metrics,
    IOptions<QueueOptions> options,
    TimeProvider time,
    ILogger<ResultApplier> logger) : BackgroundService
{
    public const string LoopName = "results";

    private readonly QueueOptions _options = options.Value;

    /// <summary>Called with each lease whose result was applied and deleted (tests wait on it).</summary>
    internal Action<Guid>? Applied { get; set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.ResultApplierStarted(_options.ResultBatchSize, _options.ResultConcurrency);
        monitor.Started(LoopName);
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            signal.Signal.Reset();
            int handled;
            try
            {
                handled = await RunOnceAsync(stoppingToken);
                failures = 0;
                monitor.Completed(LoopName);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                failures++;
                monitor.Failed(LoopName);
                var delay = Bounded.Backoff(failures, _options.PollInterval, _options.MaxRoundBackoff);
                logger.ResultRoundFailed(ex, failures, delay);
                try
                {
                    // A result recorded by this process meanwhile proves the store answers again: it ends the back-off.
                    await signal.Signal.WaitAsync(delay, time, stoppingToken);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    break;
                }

                continue;
            }

            if (handled >= _options.ResultBatchSize)
            {
                continue;
            }

            try
            {
                // Results arriving: look again soon (they are recorded by Delivery, which cannot poke this process).
                var wait = handled > 0 && _options.BusyPollInterval < _options.PollInterval ? _options.BusyPollInterval : _options.PollInterval;
                await signal.Signal.WaitAsync(wait, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    /// <summary>Applies one batch of recorded results; returns how many were handed out.</summary>
    internal async Task<int> RunOnceAsync(CancellationToken cancellationToken)
    {
        var results = await Bounded.RunAsync(
            token => spool.ClaimResultsAsync(time.GetUtcNow(), _options.ResultBatchSize, _options.ResultRetryDelay, token),
            "claiming recorded results", _options.StoreTimeout, time, cancellationToken);
        if (results.Count == 0)
        {
            return 0;
        }

        var applied = new List<Guid>(results.Count);
        await Parallel.ForEachAsync(
            results,
            new ParallelOptions { MaxDegreeOfParallelism = _options.ResultConcurrency, CancellationToken = cancellationToken },
            async (result, token) =>
            {
                if (await ApplyOneAsync(result, token))
                {
                    lock (applied)
                    {
                        applied.Add(result.LeaseId);
                    }
                }
            });

        await Bounded.RunAsync(token => spool.DeleteResultsAsync(applied, token), "deleting applied results", _options.StoreTimeout, time, cancellationToken);

        // Finished work left the in-flight window: the scheduler may claim more now rather than at its next poll.
        if (applied.Count > 0)
        {
            scheduler.Poke();
        }

        foreach (var leaseId in applied)
        {
            Applied?.Invoke(leaseId);
        }

        return results.Count;
    }

    private async Task<bool> ApplyOneAsync(PendingResult result, CancellationToken cancellationToken)
    {
        DeliveryAttempted attempt;
        try
        {
            attempt = ResultPayload.Read(result);
        }
        catch (JsonException ex)
        {
            logger.ResultUnreadable(ex, result.LeaseId, result.MessageId);
            metrics.ResultFailed();
            return false;
        }

        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var consumer = scope.ServiceProvider.GetRequiredService<DeliveryAttemptedConsumer>();
            await Bounded.RunAsync(token => consumer.ApplyAsync(attempt, token, result.TraceParent), "applying a result", _options.StoreTimeout * 2, time, cancellationToken);
            metrics.ResultApplied();
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.ResultApplyFailed(ex, result.LeaseId, result.MessageId, result.Tries);
            metrics.ResultFailed();
            return false;
        }
    }
}
