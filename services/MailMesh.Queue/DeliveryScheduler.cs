using System.Diagnostics;
using MailMesh.Contracts;
using MailMesh.Storage;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// The queue manager's main loop (Postfix <c>qmgr</c>): claim due recipients from the spool in batches, hand each job
/// (one message, one domain) to Delivery as a <see cref="DeliverMessage"/>, then sleep until the poll interval ends
/// or a new message pokes it.
/// </summary>
/// <remarks>
/// <para>
/// The bus only carries work; the spool is the truth (ARCHITECTURE.md, "The durability contract"). A
/// <see cref="DeliverMessage"/> that is lost — publish failure, broker restart, a Delivery worker killed mid-flight —
/// leaves its recipients InFlight under a lease; <see cref="ISpool.ClaimDueAsync"/> claims recipients whose lease has
/// expired together with new work, so this loop is also the sweeper that re-drives lost work. Delivery should drop a
/// work item whose <see cref="DeliverMessage.LeaseExpiresAt"/> has passed: its recipients have been claimed again.
/// </para>
/// <para>
/// Any number of Queue replicas can run this loop: claims use <c>FOR UPDATE SKIP LOCKED</c> (or the store's
/// equivalent), so no recipient is claimed by two replicas under live leases.
/// </para>
/// </remarks>
internal sealed class DeliveryScheduler(
    ISpool spool,
    IBus bus,
    SchedulerSignal signal,
    QueueMetrics metrics,
    IOptions<QueueOptions> options,
    TimeProvider time,
    ILogger<DeliveryScheduler> logger) : BackgroundService
{
    private readonly QueueOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.SchedulerStarted(_options.PollInterval, _options.ClaimBatchSize, _options.LeaseDuration);
        while (!stoppingToken.IsCancellationRequested)
        {
            signal.Reset();
            var claimed = 0;
            try
            {
                claimed = await RunOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.ClaimFailed(ex);
            }

            // A full batch means more work is probably due: claim again at once instead of sleeping.
            if (claimed >= _options.ClaimBatchSize)
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

    /// <summary>Claims one batch of due work and dispatches it. Returns the number of recipients claimed.</summary>
    internal async Task<int> RunOnceAsync(CancellationToken cancellationToken)
    {
        var jobs = await spool.ClaimDueAsync(time.GetUtcNow(), _options.ClaimBatchSize, _options.LeaseDuration, cancellationToken);
        if (jobs.Count == 0)
        {
            return 0;
        }

        var recipients = jobs.Sum(job => job.Recipients.Count);
        metrics.Claimed(recipients);
        logger.Claimed(recipients, jobs.Count);

        // Publish concurrently: with publisher confirms each publish is a broker round trip.
        await Task.WhenAll(jobs.Select(job => DispatchAsync(job, cancellationToken)));
        return recipients;
    }

    private async Task DispatchAsync(DeliveryJob job, CancellationToken cancellationToken)
    {
        // The publish below runs under this span, so MassTransit carries the message's trace to Delivery.
        using var activity = QueueTelemetry.StartInMessageTrace("queue.dispatch", ActivityKind.Producer, job.TraceParent, job.MessageId);
        activity?.SetTag("mailmesh.recipient.domain", job.Domain);
        activity?.SetTag("mailmesh.recipient.count", job.Recipients.Count);
        activity?.SetTag("mailmesh.delivery.attempt", job.Recipients.Max(r => r.Attempt));
        try
        {
            await bus.Publish(
                new DeliverMessage
                {
                    MessageId = job.MessageId,
                    Domain = job.Domain,
                    LeaseId = job.LeaseId,
                    LeaseExpiresAt = job.LeaseExpiresAt,
                    Recipients = [.. job.Recipients.Select(r => new DeliveryRecipient
                    {
                        RecipientId = r.RecipientId,
                        Address = r.Address,
                        Attempt = r.Attempt,
                        Notify = r.Notify,
                        OriginalRecipient = r.OriginalRecipient,
                    })],
                },
                cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Nothing to undo: the recipients stay InFlight until the lease expires, then are claimed again.
            activity?.SetStatus(ActivityStatusCode.Error);
            activity?.AddException(ex);
            logger.DispatchFailed(ex, job.MessageId, job.Domain, job.LeaseExpiresAt);
        }
    }
}
