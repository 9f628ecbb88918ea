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
    public static PendingResult ToPending(DeliveryAttempted attempt) => ServiceDefaults.LeasedWork.ToPendingResult(attempt);

    public static DeliveryAttempted Read(PendingResult result) =>
        JsonSerializer.Deserialize<DeliveryAttempted>(result.Payload) ?? throw new JsonException("null result payload");
}

/// <summary>
/// The outbox sweeper: applies the results recorded in the spool (<see cref="ISpool.ClaimResultsAsync"/>) in
/// batches, each batch with <see cref="DeliveryAttemptedConsumer.ApplyAllAsync"/> (one read and one commit for all of
/// its recipient updates; one by one if that fails), and deletes a result only after its
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

        var readable = new List<(PendingResult Result, DeliveryAttempted Attempt)>(results.Count);
        foreach (var result in results)
        {
            if (TryRead(result, out var attempt))
            {
                readable.Add((result, attempt));
            }
        }

        var applied = await ApplyBatchAsync(readable, cancellationToken) ?? await ApplyEachAsync(readable, cancellationToken);
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

    /// <summary>
    /// The batch in one go (<see cref="DeliveryAttemptedConsumer.ApplyAllAsync"/>): the lease ids applied completely,
    /// or null when the batch's shared steps failed.
    /// </summary>
    private async Task<List<Guid>?> ApplyBatchAsync(List<(PendingResult Result, DeliveryAttempted Attempt)> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return [];
        }

        IReadOnlyList<Exception?> errors;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var consumer = scope.ServiceProvider.GetRequiredService<DeliveryAttemptedConsumer>();
            errors = await Bounded.RunAsync(
                token => consumer.ApplyAllAsync([.. batch.Select(b => new ResultToApply(b.Attempt, b.Result.TraceParent))], token),
                "applying results", _options.StoreTimeout * 2, time, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // A database error, or one result that breaks the batch: one by one, so it cannot hold back the others.
            logger.ResultBatchFailed(ex, batch.Count);
            return null;
        }

        var applied = new List<Guid>(batch.Count);
        for (var i = 0; i < batch.Count; i++)
        {
            if (errors[i] is { } error)
            {
                logger.ResultApplyFailed(error, batch[i].Result.LeaseId, batch[i].Result.MessageId, batch[i].Result.Tries);
                metrics.ResultFailed();
            }
            else
            {
                metrics.ResultApplied();
                applied.Add(batch[i].Result.LeaseId);
            }
        }

        return applied;
    }

    /// <summary>Each result on its own, <see cref="QueueOptions.ResultConcurrency"/> at a time: the lease ids applied.</summary>
    private async Task<List<Guid>> ApplyEachAsync(List<(PendingResult Result, DeliveryAttempted Attempt)> batch, CancellationToken cancellationToken)
    {
        var applied = new List<Guid>(batch.Count);
        await Parallel.ForEachAsync(
            batch,
            new ParallelOptions { MaxDegreeOfParallelism = _options.ResultConcurrency, CancellationToken = cancellationToken },
            async (item, token) =>
            {
                if (await ApplyOneAsync(item.Result, item.Attempt, token))
                {
                    lock (applied)
                    {
                        applied.Add(item.Result.LeaseId);
                    }
                }
            });
        return applied;
    }

    private bool TryRead(PendingResult result, out DeliveryAttempted attempt)
    {
        try
        {
            attempt = ResultPayload.Read(result);
            return true;
        }
        catch (JsonException ex)
        {
            logger.ResultUnreadable(ex, result.LeaseId, result.MessageId);
            metrics.ResultFailed();
            attempt = null!;
            return false;
        }
    }

    private async Task<bool> ApplyOneAsync(PendingResult result, DeliveryAttempted attempt, CancellationToken cancellationToken)
    {
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
