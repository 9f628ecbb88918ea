using System.Diagnostics;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// The queue manager's main loop (Postfix <c>qmgr</c>): claim due recipients from the spool in batches, hand each job
/// (one message, one domain) to Delivery as a <see cref="DeliverMessage"/> (several of a claim together, as one
/// <see cref="DeliverMessages"/>), then sleep until the poll interval ends
/// or a new message pokes it.
/// </summary>
/// <remarks>
/// <para>
/// The bus only carries work; the spool is the truth (ARCHITECTURE.md, "The durability contract"). A
/// <see cref="DeliverMessage"/> that is lost — publish failure, broker restart, a Delivery worker killed mid-flight —
/// leaves its recipients InFlight under a lease; <see cref="ISpool.ClaimDueAsync(ClaimRequest, CancellationToken)"/>
/// claims recipients whose lease has expired together with new work, so this loop is also the sweeper that re-drives
/// lost work. Delivery takes the lease before it sends (<see cref="ISpool.StartAttemptAsync"/>) and renews it while it
/// works, so a work item whose lease was re-issued is never sent.
/// </para>
/// <para>
/// The loop can never stop: every await on the spool or the bus is bounded, a failed round is retried with back-off,
/// and each completed round is recorded in <see cref="QueueLoopMonitor"/>, so a stalled scheduler fails readiness.
/// It claims inside an in-flight window (<see cref="QueueOptions.MaxJobsInFlight"/>, per domain
/// <see cref="QueueOptions.MaxJobsInFlightPerDomain"/>): no more work than Delivery can take waits in the broker, so
/// work does not age there past its lease.
/// </para>
/// <para>
/// Any number of Queue replicas can run this loop: claims use <c>FOR UPDATE SKIP LOCKED</c> (or the store's
/// equivalent), so no recipient is claimed by two replicas under live leases.
/// </para>
/// <para>
/// The lease clock stops while the spool is unreachable: nobody can renew a lease then, so before it claims, the loop
/// writes a heartbeat, and the first heartbeat after a gap longer than <see cref="QueueOptions.LeaseClockGap"/>
/// (a database restart, or no scheduler running) extends every lease that was live before the gap by its length. A
/// Delivery that sent a message while the database was down then still holds its lease when it records the result.
/// </para>
/// </remarks>
internal sealed class DeliveryScheduler(
    ISpool spool,
    IBus bus,
    SchedulerSignal signal,
    ResultSignal resultSignal,
    QueueLoopMonitor monitor,
    QueueMetrics metrics,
    IOptions<QueueOptions> options,
    IOptions<MailboxDomainsOptions> mailboxDomains,
    ReturnedMail returnedMail,
    TimeProvider time,
    ILogger<DeliveryScheduler> logger) : BackgroundService
{
    public const string LoopName = "claim";

    /// <summary>RFC 3463 §3.5: 4.4.7 "delivery time expired".</summary>
    internal const string ExpiredText = "Message expired in the queue (Queue:MaxAge) before it could be delivered";

    private readonly QueueOptions _options = options.Value;

    // The lease clock's heartbeat as this scheduler last wrote it, and whether a round failed since (the store may have
    // been out of reach: the next round beats before it claims, whatever the time since).
    private DateTimeOffset? _lastBeat;
    private volatile bool _roundFailedSinceBeat;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.SchedulerStarted(_options.PollInterval, _options.ClaimInterval, _options.ClaimBatchSize, _options.LeaseDuration);
        monitor.Started(LoopName);
        var failures = 0;
        long? lastRound = null;
        var spaced = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            int claimed;
            try
            {
                // Pokes that come while the round waits for its turn are served by it: forgotten after the wait.
                if (spaced && lastRound is { } last && time.GetElapsedTime(last) is var since && since < _options.ClaimInterval)
                {
                    await Task.Delay(_options.ClaimInterval - since, time, stoppingToken);
                }

                signal.Reset();
                lastRound = time.GetTimestamp();
                claimed = await RunOnceAsync(stoppingToken);
                failures = 0;
                monitor.Completed(LoopName);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                // Whatever failed (the database refusing connections, a timeout, a bug), the loop goes on: back off,
                // then try again. A claim that committed before its reply was lost only costs a lease expiry.
                failures++;
                spaced = false; // the back-off is the wait
                monitor.Failed(LoopName);
                var delay = Bounded.Backoff(failures, _options.PollInterval, _options.MaxRoundBackoff);
                logger.ClaimFailed(ex, failures, delay);
                try
                {
                    await Task.Delay(delay, time, stoppingToken);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    break;
                }

                continue;
            }

            // A full batch means more work is probably due: claim again at once instead of sleeping.
            spaced = claimed < _options.ClaimBatchSize;
            if (!spaced)
            {
                continue;
            }

            try
            {
                await signal.WaitAsync(_options.PollInterval, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    /// <summary>
    /// Claims one batch of due work inside the in-flight window and dispatches it; work older than
    /// <see cref="QueueOptions.MaxAge"/> is expired instead. Returns the number of recipients claimed. Every await is
    /// bounded (<see cref="QueueOptions.StoreTimeout"/>, <see cref="QueueOptions.PublishTimeout"/>).
    /// </summary>
    internal async Task<int> RunOnceAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await ClaimAndDispatchAsync(cancellationToken);
        }
        catch
        {
            _roundFailedSinceBeat = true;
            throw;
        }
    }

    private async Task<int> ClaimAndDispatchAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await KeepLeaseClockAsync(now, cancellationToken);
        var request = new ClaimRequest
        {
            Now = now,
            MaxRecipients = _options.ClaimBatchSize,
            LeaseDuration = _options.LeaseDuration,
            MaxJobsInFlight = _options.MaxJobsInFlight,
            MaxJobsInFlightPerDomain = _options.MaxJobsInFlightPerDomain,
        };
        var jobs = await Bounded.RunAsync(token => spool.ClaimDueAsync(request, token), "claiming due work", _options.StoreTimeout, time, cancellationToken);
        if (jobs.Count == 0)
        {
            return 0;
        }

        var recipients = jobs.Sum(job => job.Recipients.Count);
        metrics.Claimed(recipients);
        logger.Claimed(recipients, jobs.Count);

        // RFC 5321 §4.5.4.1: give up after MaxAge. Checked here as well as when a result is applied, so a message whose
        // attempts keep faulting or getting lost (no result ever arrives) expires and bounces instead of being re-driven
        // forever.
        var expired = jobs.Where(job => now - job.ReceivedAt >= _options.MaxAge).ToList();
        foreach (var job in expired)
        {
            await ExpireAsync(job, now, cancellationToken);
        }

        // Publish concurrently: with publisher confirms each publish is a broker round trip. Work for Delivery goes in
        // batches (issue 8), the rest alone: returned mail is applied here, and mailbox domains' work goes to Mailbox.
        var dispatching = new List<Task>();
        var remote = new List<DeliveryJob>();
        foreach (var job in jobs.Except(expired))
        {
            if (returnedMail.IsReturnPath(job.Domain) || mailboxDomains.Value.Contains(job.Domain))
            {
                dispatching.Add(DispatchAsync(job, cancellationToken));
            }
            else
            {
                remote.Add(job);
            }
        }

        foreach (var batch in Batches(remote, _options.DispatchBatchSize))
        {
            dispatching.Add(batch.Count == 1 ? DispatchAsync(batch[0], cancellationToken) : DispatchBatchAsync(batch, cancellationToken));
        }

        await Task.WhenAll(dispatching);
        return recipients;
    }

    /// <summary>
    /// Splits <paramref name="jobs"/> into the fewest batches of at most <paramref name="maxBatch"/>, of sizes that differ
    /// by one at most (9 jobs in batches of 8 go as 4 and 5, not 8 and 1), in claim order.
    /// </summary>
    internal static IEnumerable<List<DeliveryJob>> Batches(List<DeliveryJob> jobs, int maxBatch)
    {
        if (jobs.Count == 0)
        {
            yield break;
        }

        var count = (jobs.Count + maxBatch - 1) / maxBatch;
        var start = 0;
        for (var i = 0; i < count; i++)
        {
            var size = (jobs.Count - start) / (count - i);
            yield return jobs.GetRange(start, size);
            start += size;
        }
    }

    /// <summary>
    /// Writes the lease clock's heartbeat before a claim: after a failed round (the spool may have been unreachable),
    /// on the first round, and otherwise when half a PollInterval has passed since the last one. A round comes at least
    /// every PollInterval (plus its own time), so beats are at most about 1.5 PollIntervals apart, inside
    /// <see cref="QueueOptions.LeaseClockGap"/>'s default of twice that. Skipping beats for up to a whole PollInterval let
    /// a poked round just before the mark put the next beat two PollIntervals later: a gap, and every live lease
    /// extended for nothing. When no scheduler reached the spool for longer than
    /// <see cref="QueueOptions.LeaseClockGap"/>, the spool extends every live lease by that gap before this claim can
    /// see it as expired: its holder could not renew it meanwhile, and re-issuing it would send the message again
    /// while the holder is still recording its result (<see cref="ISpool.BeatLeaseClockAsync"/>).
    /// </summary>
    private async Task KeepLeaseClockAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!_roundFailedSinceBeat && _lastBeat is { } last && now - last < _options.PollInterval / 2)
        {
            return;
        }

        var pause = await Bounded.RunAsync(
            token => spool.BeatLeaseClockAsync(now, _options.LeaseClockGap, token), "beating the lease clock", _options.StoreTimeout, time, cancellationToken);
        _lastBeat = now;
        _roundFailedSinceBeat = false;
        if (pause is not null)
        {
            logger.LeaseClockPaused(pause.From, pause.To, pause.Length, pause.Extended);
            metrics.LeasesExtended(pause.Extended);
        }
    }

    /// <summary>
    /// Records a "not attempted, expired" result for the job, as Delivery records its results: the result applier
    /// turns it into Expired recipients and the failure DSN (RFC 3464) through the one path every result takes.
    /// </summary>
    private async Task ExpireAsync(DeliveryJob job, DateTimeOffset now, CancellationToken cancellationToken)
    {
        logger.ExpiredAtClaim(job.MessageId, _options.MaxAge, job.Recipients.Count, job.Domain);
        var attempt = new DeliveryAttempted
        {
            MessageId = job.MessageId,
            Domain = job.Domain,
            LeaseId = job.LeaseId,
            Results = [.. job.Recipients.Select(r => new RecipientResult
            {
                RecipientId = r.RecipientId,
                Address = r.Address,
                Outcome = DeliveryOutcome.Deferred,
                ReplyCode = 451,
                EnhancedCode = "4.4.7",
                ReplyText = ExpiredText,
                Class = BounceClass.MessageExpired,
            })],
            StartedAt = now,
            CompletedAt = now,
        };
        await Bounded.RunAsync(
            token => spool.RecordResultAsync(ResultPayload.ToPending(attempt), now, token), "recording an expiry", _options.StoreTimeout, time, cancellationToken);
        metrics.ExpiredAtClaim(job.Recipients.Count);
        resultSignal.Poke();
    }

    private async Task DispatchAsync(DeliveryJob job, CancellationToken cancellationToken)
    {
        if (returnedMail.IsReturnPath(job.Domain))
        {
            // Mail to a return path MailMesh issued (ReturnPath:Domain) is a bounce or complaint about one of its own
            // messages: applied here, never delivered anywhere.
            await returnedMail.ProcessAsync(job, cancellationToken);
            return;
        }

        // The publish below runs under this span, so MassTransit carries the message's trace to Delivery.
        using var activity = StartDispatch(job);
        try
        {
            var message = ToWork(job, activity);
            // Recipients at a mailbox domain (Policy:MailboxDomains) are stored here by the Mailbox service (issue 9): the
            // same work item, lease and result outbox, another worker.
            await Bounded.RunAsync(
                token => mailboxDomains.Value.Contains(job.Domain)
                    ? bus.Publish(new DeliverLocalMessage { Work = message }, token)
                    : bus.Publish(message, token),
                "publishing DeliverMessage", _options.PublishTimeout, time, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Nothing to undo: the recipients stay InFlight until the lease expires, then are claimed again.
            activity?.SetStatus(ActivityStatusCode.Error);
            activity?.AddException(ex);
            logger.DispatchFailed(ex, job.MessageId, job.Domain, job.LeaseExpiresAt);
        }
    }

    /// <summary>
    /// Publishes several jobs for Delivery as one <see cref="DeliverMessages"/>. Each job still has its dispatch span in its
    /// message's trace, and carries that span's context for Delivery to continue; the publish itself is a span of its
    /// own, linked to them (as Ingress's announcements are), because one bus message can carry one trace context.
    /// </summary>
    private async Task DispatchBatchAsync(List<DeliveryJob> batch, CancellationToken cancellationToken)
    {
        var dispatches = new Activity?[batch.Count];
        var work = new DeliverMessage[batch.Count];
        try
        {
            for (var i = 0; i < batch.Count; i++)
            {
                // A message stored without a trace context gets a root span, not a child of the previous job's dispatch.
                Activity.Current = null;
                dispatches[i] = StartDispatch(batch[i]);
                work[i] = ToWork(batch[i], dispatches[i]);
            }

            // A root of its own: without an explicit parent the span would take the current one, the last dispatch.
            Activity.Current = null;
            var links = dispatches.OfType<Activity>().Select(a => new ActivityLink(a.Context)).ToList();
            using var publish = QueueTelemetry.Source.StartActivity("queue.dispatch_batch", ActivityKind.Producer, parentContext: default, links: links);
            publish?.SetTag("mailmesh.jobs", batch.Count);
            try
            {
                await Bounded.RunAsync(
                    token => bus.Publish(new DeliverMessages { Jobs = work }, token), "publishing DeliverMessages", _options.PublishTimeout, time, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // Nothing to undo, as for one job: every job's recipients stay InFlight until their lease expires.
                publish?.SetStatus(ActivityStatusCode.Error);
                publish?.AddException(ex);
                foreach (var (job, dispatch) in batch.Zip(dispatches))
                {
                    dispatch?.SetStatus(ActivityStatusCode.Error);
                    logger.DispatchFailed(ex, job.MessageId, job.Domain, job.LeaseExpiresAt);
                }
            }
        }
        finally
        {
            foreach (var dispatch in dispatches)
            {
                dispatch?.Dispose();
            }
        }
    }

    private static Activity? StartDispatch(DeliveryJob job)
    {
        var activity = QueueTelemetry.StartInMessageTrace("queue.dispatch", ActivityKind.Producer, job.TraceParent, job.MessageId);
        activity?.SetTag("mailmesh.recipient.domain", job.Domain);
        activity?.SetTag("mailmesh.recipient.count", job.Recipients.Count);
        activity?.SetTag("mailmesh.delivery.attempt", job.Recipients.Max(r => r.Attempt));
        return activity;
    }

    private DeliverMessage ToWork(DeliveryJob job, Activity? dispatch) => new()
    {
        MessageId = job.MessageId,
        Domain = job.Domain,
        LeaseId = job.LeaseId,
        LeaseExpiresAt = job.LeaseExpiresAt,
        LeaseDuration = _options.LeaseDuration,
        Pool = job.Pool,
        TraceParent = dispatch?.Id,
        Recipients = [.. job.Recipients.Select(r => new DeliveryRecipient
        {
            RecipientId = r.RecipientId,
            Address = r.Address,
            Attempt = r.Attempt,
            Notify = r.Notify,
            OriginalRecipient = r.OriginalRecipient,
        })],
    };
}
