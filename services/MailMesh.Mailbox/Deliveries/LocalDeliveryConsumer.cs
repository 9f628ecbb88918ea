using System.Data.Common;
using System.Diagnostics;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MailMesh.Storage.Content;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Mailbox.Deliveries;

/// <summary>
/// Stores one message for its recipients at a mailbox domain (<see cref="DeliverLocalMessage"/>) and records one
/// <see cref="DeliveryAttempted"/> in the spool's result outbox, under the same lease and fault rules as remote delivery
/// (see Delivery's <c>DeliverMessageConsumer</c>): the attempt first takes the lease (<see cref="ISpool.StartAttemptAsync"/>,
/// which also reads the message; nothing is stored when the lease was re-issued or another consumer holds it), stores,
/// then records the result conditionally on the lease, retrying only that write until the spool answers (the bus only
/// when it never does).
/// </summary>
/// <remarks>
/// Local delivery is exactly once without the one window remote delivery has: the store is idempotent per (spool
/// message, recipient) (<see cref="IMailStore.DeliverAsync"/>), so an attempt re-issued after a crash between the store's
/// commit and the recorded result finds the message stored and reports it delivered again. For the same reason the lease
/// is not renewed while storing: the store is one short transaction bounded by <see cref="LocalDeliveryOptions.StoreTimeout"/>,
/// far inside the lease, and a lease that ran out anyway costs a second, harmless attempt.
/// Outcomes: stored → delivered (250 2.0.0); unknown user → bounced (550 5.1.1); disabled → bounced (550 5.2.1); over
/// quota → deferred (452 4.2.2, RFC 3463 "mailbox full"); store unreachable → deferred (451 4.3.0).
/// </remarks>
internal sealed class LocalDeliveryConsumer(
    ISpool spool,
    IMailStore store,
    LocalDeliveryMetrics metrics,
    IOptions<LocalDeliveryOptions> options,
    TimeProvider time,
    ILogger<LocalDeliveryConsumer> logger) : IConsumer<DeliverLocalMessage>
{
    private static readonly TimeSpan FallbackLeaseDuration = TimeSpan.FromMinutes(1);

    private readonly LocalDeliveryOptions _options = options.Value;

    public async Task Consume(ConsumeContext<DeliverLocalMessage> context)
    {
        var work = context.Message.Work;
        var startedAt = time.GetUtcNow();
        var started = time.GetTimestamp();
        var duration = work.LeaseDuration is { } configured && configured > TimeSpan.Zero ? configured
            : work.LeaseExpiresAt - startedAt > TimeSpan.Zero ? work.LeaseExpiresAt - startedAt
            : FallbackLeaseDuration;

        // Take the lease as a fresh owner; a failure throws and the definition's retry starts over.
        var message = await BoundedAsync(
            token => spool.StartAttemptAsync(work.MessageId, work.LeaseId, Guid.NewGuid(), startedAt + duration, token), context.CancellationToken);
        if (message is null)
        {
            metrics.Lease("not_taken");
            LocalDeliveryLog.LeaseNotTaken(logger, work.MessageId, work.Domain, work.LeaseId);
            return;
        }

        // The store write below is bounded by a timeout that can leave it running (LeasedWork.WithTimeoutAsync), so the
        // content must outlive this consume: an ordinary array here, never the rented buffer, which would be reused
        // under a write still in progress.
        if (message.ContentLease is { } rented)
        {
            message = message with { Content = message.Content.ToArray(), ContentLease = null };
            rented.Dispose();
        }

        using var activity = LocalDeliveryMetrics.ActivitySource.StartActivity(
            ActivityKind.Internal, parentContext: Activity.Current?.Context ?? default, name: "mailbox.deliver");
        activity?.SetTag("mailmesh.message.id", work.MessageId);
        activity?.SetTag("mailmesh.recipient.domain", work.Domain);
        activity?.SetTag("mailmesh.recipients", work.Recipients.Count);

        var results = await LoadAndStoreAsync(work, message, startedAt);
        var attempted = new DeliveryAttempted
        {
            MessageId = work.MessageId,
            Domain = work.Domain,
            LeaseId = work.LeaseId,
            Results = results,
            RemoteHost = _options.HostName,
            StartedAt = startedAt,
            CompletedAt = time.GetUtcNow(),
        };
        await RecordAsync(context, attempted);

        foreach (var result in results)
        {
            metrics.Recipient(result.Outcome);
        }

        metrics.Attempt(time.GetElapsedTime(started));
        LocalDeliveryLog.Stored(logger, work.MessageId, work.Domain,
            results.Count(r => r.Outcome == DeliveryOutcome.Delivered), results.Count(r => r.Outcome == DeliveryOutcome.Deferred),
            results.Count(r => r.Outcome == DeliveryOutcome.Bounced));
    }

    /// <summary>Stores the message with its content, which a large message's lease take left in the spool.</summary>
    private async Task<IReadOnlyList<RecipientResult>> LoadAndStoreAsync(DeliverMessage work, StoredMessage message, DateTimeOffset deliveredAt)
    {
        AttemptContent? content;
        try
        {
            content = await AttemptContent.LoadAsync(spool, message, _options.ContentDirectory, CancellationToken.None);
        }
        catch (Exception ex) when (ex is DbException or TimeoutException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            LocalDeliveryLog.StoreFailed(logger, ex, work.MessageId, work.Domain);
            return [.. work.Recipients.Select(r => Result(r, DeliveryOutcome.Deferred, 451, "4.3.0", "The message could not be read from the spool, try again later"))];
        }

        await using var owned = content;
        if (content is null)
        {
            return [.. work.Recipients.Select(r => Result(r, DeliveryOutcome.Deferred, 451, "4.3.0", "The message's content is no longer in the spool"))];
        }

        return await StoreAsync(work, message, content.Memory, deliveredAt);
    }

    private async Task<IReadOnlyList<RecipientResult>> StoreAsync(DeliverMessage work, StoredMessage message, ReadOnlyMemory<byte> body, DateTimeOffset deliveredAt)
    {
        var delivery = new LocalDelivery
        {
            SpoolMessageId = work.MessageId,
            Body = body,
            DeliveredAt = deliveredAt,

            // Ingress's content checks mark quarantined mail (DMARC p=quarantine, a spam verdict) and strip the mark
            // from what clients send.
            Junk = JunkHeader.IsIn(body.Span),
            Recipients = [.. work.Recipients.Select(r => new LocalDeliveryRecipient
            {
                RecipientId = r.RecipientId,
                Address = r.Address,
                HeaderPrefix = DeliveryHeaders.Prefix(message.Sender, r.Address, _options.HostName, work.MessageId, deliveredAt),
            })],
        };

        try
        {
            // Not cancelled by shutdown: the store is one short transaction, and a stored message must get its result.
            var outcomes = await BoundedAsync(token => store.DeliverAsync(delivery, token), CancellationToken.None);
            return [.. work.Recipients.Zip(outcomes, Result)];
        }
        catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException)
        {
            LocalDeliveryLog.StoreFailed(logger, ex, work.MessageId, work.Domain);
            return [.. work.Recipients.Select(r => Result(r, DeliveryOutcome.Deferred, 451, "4.3.0", "Mailbox store unavailable, try again later"))];
        }
    }

    private static RecipientResult Result(DeliveryRecipient recipient, LocalDeliveryOutcome outcome) => outcome.Status switch
    {
        LocalDeliveryStatus.Stored => Result(recipient, DeliveryOutcome.Delivered, 250, "2.0.0", $"Delivered to mailbox (uid {outcome.Uid})"),
        LocalDeliveryStatus.UnknownUser => Result(recipient, DeliveryOutcome.Bounced, 550, "5.1.1", "No such mailbox here"),
        LocalDeliveryStatus.Disabled => Result(recipient, DeliveryOutcome.Bounced, 550, "5.2.1", "Mailbox disabled, not accepting messages"),
        _ => Result(recipient, DeliveryOutcome.Deferred, 452, "4.2.2", "Mailbox full (over quota)"),
    };

    private static RecipientResult Result(DeliveryRecipient recipient, DeliveryOutcome outcome, int code, string enhanced, string text) => new()
    {
        RecipientId = recipient.RecipientId,
        Address = recipient.Address,
        Outcome = outcome,
        ReplyCode = code,
        EnhancedCode = enhanced,
        ReplyText = text,
    };

    /// <summary>
    /// Records the result in the outbox, conditionally on the lease (safe at any time: false means it was re-issued and
    /// the next attempt reports). Only this write is retried, with back-off up to a second, until the spool answers; on
    /// shutdown or after <see cref="LocalDeliveryOptions.ResultRetryTimeout"/> the result is published for Queue to
    /// record instead (the same idempotent write). Were both lost, the lease runs out and a new attempt finds the
    /// message stored: a late result, never a second copy.
    /// </summary>
    private async Task RecordAsync(ConsumeContext context, DeliveryAttempted attempted)
    {
        var pending = LeasedWork.ToPendingResult(attempted);
        var giveUpAt = time.GetUtcNow() + _options.ResultRetryTimeout;
        for (var failures = 1; ; failures++)
        {
            try
            {
                var recorded = await BoundedAsync(token => spool.RecordResultAsync(pending, time.GetUtcNow(), token), CancellationToken.None);
                metrics.Result(recorded ? "recorded" : "stale");
                return;
            }
            catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException)
            {
                if (context.CancellationToken.IsCancellationRequested || time.GetUtcNow() >= giveUpAt)
                {
                    await PublishAsync(context, attempted, ex);
                    return;
                }

                var delay = TimeSpan.FromMilliseconds(Math.Min(1000, 100 << Math.Min(failures, 4)));
                LocalDeliveryLog.RecordFailed(logger, ex, attempted.MessageId, attempted.LeaseId, failures, delay);
                try
                {
                    await Task.Delay(delay, time, context.CancellationToken);
                }
                catch (OperationCanceledException)
                {
                    // Shutting down: one more try, then the bus.
                }
            }
        }
    }

    private async Task PublishAsync(ConsumeContext context, DeliveryAttempted attempted, Exception cause)
    {
        try
        {
            await BoundedAsync(async token =>
            {
                await context.Publish(attempted, token);
                return true;
            }, CancellationToken.None);
            metrics.Result("published");
            LocalDeliveryLog.ResultPublished(logger, cause, attempted.MessageId, attempted.LeaseId);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            metrics.Result("lost");
            LocalDeliveryLog.ResultLost(logger, ex, attempted.MessageId, attempted.LeaseId);
        }
    }

    /// <summary>One store, spool or bus call, bounded by <see cref="LocalDeliveryOptions.StoreTimeout"/> even if it ignores its token.</summary>
    private Task<T> BoundedAsync<T>(Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken) =>
        LeasedWork.WithTimeoutAsync(operation, _options.StoreTimeout, time, cancellationToken);
}

/// <summary>Concurrency is Mailbox:DeliveryConcurrency; taking the lease is retried with back-off (see the base).</summary>
internal sealed class LocalDeliveryConsumerDefinition(IOptions<LocalDeliveryOptions> options)
    : LeasedWorkConsumerDefinition<LocalDeliveryConsumer>(options.Value.DeliveryConcurrency);
