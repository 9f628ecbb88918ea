using System.Diagnostics;
using System.Runtime.ExceptionServices;
using MailMesh.Contracts;
using MailMesh.Storage;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// Applies Delivery's results to the spool: delivered and bounced recipients become final, deferred ones get their
/// next attempt time (or expire), and the sender gets the DSNs it asked for (RFC 3461, RFC 3464).
/// </summary>
/// <remarks>
/// <para>
/// Results reach Queue through the spool's outbox (<see cref="ISpool.RecordResultAsync"/>): Delivery records each
/// result there itself, and <see cref="ResultApplier"/> hands recorded results to <see cref="ApplyAsync"/>, deleting
/// each only after it was applied. A result that Delivery could not record (its database was unreachable) arrives
/// here over the bus instead, and <see cref="Consume"/> records it in the outbox the same way: a result is never
/// applied from a bus message, so it is never dropped into an error queue half-applied.
/// </para>
/// <para>
/// Idempotent: <see cref="ISpool.CompleteAttemptAsync"/> applies an update only while the recipient is InFlight under
/// the result's lease, and events are emitted for the applied updates only. DSN ids derive from the message and
/// lease, and a recipient this result already made final gets its DSN and suppression again, so applying a result a
/// second time (after a crash or a database outage between its steps) completes what the first try left undone.
/// </para>
/// </remarks>
internal sealed class DeliveryAttemptedConsumer(
    ISpool spool,
    IPolicyStore policyStore,
    RetrySchedule schedule,
    DsnWriter dsn,
    QueueMetrics metrics,
    QueueEvents events,
    ResultSignal signal,
    IOptions<QueueOptions> options,
    TimeProvider time,
    ILogger<DeliveryAttemptedConsumer> logger) : IConsumer<DeliveryAttempted>
{
    internal const string FailureKind = "failure";
    internal const string SuccessKind = "success";
    internal const string DelayKind = "delay";

    private readonly QueueOptions _options = options.Value;

    /// <summary>A result that came over the bus (Delivery could not record it): record it in the outbox.</summary>
    public async Task Consume(ConsumeContext<DeliveryAttempted> context)
    {
        var attempt = context.Message;
        var recorded = await spool.RecordResultAsync(ResultPayload.ToPending(attempt), time.GetUtcNow(), context.CancellationToken);
        logger.ResultRecordedFromBus(attempt.MessageId, attempt.LeaseId, recorded);
        if (recorded)
        {
            signal.Poke();
        }
    }

    /// <summary>Applies one recorded result: recipient states, events, suppressions and DSNs.</summary>
    internal async Task ApplyAsync(DeliveryAttempted attempt, CancellationToken cancellationToken, string? traceParent = null)
    {
        var errors = await ApplyAllAsync([new ResultToApply(attempt, traceParent)], cancellationToken);
        if (errors[0] is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }
    }

    /// <summary>
    /// Applies a batch of recorded results (issue 8: one commit for many mails): one read of their messages' states
    /// (<see cref="ISpool.GetStatusesAsync"/>), one transaction for every recipient update
    /// (<see cref="ISpool.CompleteAttemptsAsync"/>), then each result's events, suppressions and DSNs, up to
    /// <see cref="QueueOptions.ResultConcurrency"/> at a time. A failure of the shared steps throws for the whole
    /// batch. Returns, per result, null when it was applied completely, or what stopped its own steps: that result
    /// stays recorded and is applied again later, which completes what this run left undone (see the remarks above).
    /// </summary>
    internal async Task<IReadOnlyList<Exception?>> ApplyAllAsync(IReadOnlyList<ResultToApply> batch, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var statuses = await spool.GetStatusesAsync([.. batch.Select(b => b.Attempt.MessageId)], cancellationToken);
        var plans = new Plan?[batch.Count];
        var completions = new List<AttemptCompletion>(batch.Count);
        for (var i = 0; i < batch.Count; i++)
        {
            var attempt = batch[i].Attempt;
            if (!statuses.TryGetValue(attempt.MessageId, out var status))
            {
                logger.UnknownMessage(attempt.MessageId);
                continue;
            }

            var before = status.Recipients.ToDictionary(r => r.RecipientId);
            var results = attempt.Results.Where(r => before.ContainsKey(r.RecipientId)).ToList();
            var updates = results
                .Select(r => schedule.Decide(r, AttemptNumber(before[r.RecipientId]), status.ReceivedAt, now, attempt.RemoteHost) with
                {
                    // The session the replies came over, kept with the attempt (admin API, a message's attempts).
                    TlsProtocol = attempt.Tls?.Protocol,
                    TlsCipher = attempt.Tls?.Cipher,
                    TlsVerification = attempt.Tls?.Verification,
                })
                .ToList();
            plans[i] = new Plan(batch[i], status, before, results, updates, completions.Count);
            completions.Add(new AttemptCompletion { MessageId = attempt.MessageId, LeaseId = attempt.LeaseId, Updates = updates });
        }

        var applied = await spool.CompleteAttemptsAsync(completions, cancellationToken);
        var errors = new Exception?[batch.Count];
        try
        {
            await Parallel.ForEachAsync(
                Enumerable.Range(0, batch.Count).Where(i => plans[i] is not null),
                new ParallelOptions { MaxDegreeOfParallelism = _options.ResultConcurrency, CancellationToken = cancellationToken },
                async (i, token) =>
                {
                    try
                    {
                        await FinishAsync(plans[i]!, applied[plans[i]!.Completion], now, token);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
                    {
                        errors[i] = ex;
                    }
                });
        }
        finally
        {
            // The batch's events in one bus message, in the batch's order. The updates are committed, and applying a result
            // again makes no events for them (only updates applied by that run do), so the events go out whatever happened
            // after the commit: a result whose DSN or suppression failed, and a batch stopped by its time limit or a
            // shutdown (Parallel.ForEachAsync has waited for every started result). Bounded by Queue:PublishTimeout alone.
            await events.PublishAsync([.. plans.Where(p => p is not null).SelectMany(p => p!.Events)], CancellationToken.None);
        }

        return errors;
    }

    /// <summary>What one result of a batch changes, decided before the batch's transaction.</summary>
    private sealed record Plan(
        ResultToApply Result,
        MessageStatus Status,
        Dictionary<long, RecipientStatus> Before,
        List<RecipientResult> Results,
        List<RecipientUpdate> Updates,
        int Completion)
    {
        /// <summary>The events of the updates this run applied, published with the rest of the batch's.</summary>
        public List<MessageEvent> Events { get; } = [];
    }

    /// <summary>One result's steps after its recipient updates were committed: events, suppressions, DSNs.</summary>
    private async Task FinishAsync(Plan plan, IReadOnlyList<RecipientUpdate> applied, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var (attempt, traceParent) = plan.Result;
        var (status, before, results, updates) = (plan.Status, plan.Before, plan.Results, plan.Updates);

        // In the message's trace: a child of the attempt that produced the result (recorded with it in the outbox).
        using var activity = QueueTelemetry.StartInMessageTrace("queue.apply_result", ActivityKind.Consumer, traceParent, attempt.MessageId);
        activity?.SetTag("mailmesh.message.id", attempt.MessageId);
        activity?.SetTag("mailmesh.recipient.domain", attempt.Domain);

        if (applied.Count < updates.Count)
        {
            logger.StaleResults(attempt.MessageId, attempt.LeaseId, updates.Count - applied.Count, updates.Count);
        }

        var appliedById = applied.ToDictionary(u => u.RecipientId);

        // Every event first, before any step that can fail: a suppression or DSN that fails leaves the result to be
        // applied again, and that run finds these updates already applied and makes no events for them.
        foreach (var update in applied)
        {
            metrics.Completed(update.State, update.BounceClass);
            if (update.State == RecipientState.Delivered)
            {
                metrics.Delivered(attempt.CompletedAt - status.ReceivedAt);
            }

            logger.RecipientCompleted(attempt.MessageId, update.RecipientId, update.State, update.ReplyCode, update.EnhancedCode);
            plan.Events.Add(
                new MessageEvent
                {
                    MessageId = attempt.MessageId,
                    Type = EventType(update.State),
                    Recipient = before[update.RecipientId].Address,
                    ReplyCode = update.ReplyCode,
                    EnhancedCode = update.EnhancedCode,
                    Text = update.ReplyText,
                    RemoteHost = update.RemoteHost,
                    Timestamp = now,
                    Class = BounceClassOf(update.BounceClass),
                });
        }

        foreach (var update in applied)
        {
            if (_options.SuppressHardBounces && SuppressionRules.ShouldSuppress(results.Find(r => r.RecipientId == update.RecipientId), update, _options.SuppressingClasses))
            {
                await SuppressAsync(before[update.RecipientId].Address, update, now, cancellationToken);
            }
        }

        if (status.Sender.Length == 0 || status.Origin == MessageOrigin.Dsn)
        {
            // RFC 5321 §4.5.5 / RFC 3461 §6.2: never a DSN about a message from the null sender.
            return;
        }

        // A second application of this result (the first stopped after CompleteAttemptAsync): recipients it already
        // made final get the suppression the first one may not have stored (adding a suppression twice is harmless).
        if (_options.SuppressHardBounces)
        {
            foreach (var result in results)
            {
                var recipient = before[result.RecipientId];
                if (!appliedById.ContainsKey(result.RecipientId) && AlreadyFinalisedBy(recipient, result))
                {
                    var update = new RecipientUpdate
                    {
                        RecipientId = recipient.RecipientId,
                        State = recipient.State,
                        AttemptedAt = attempt.CompletedAt,
                        ReplyCode = recipient.LastReplyCode,
                        EnhancedCode = recipient.LastEnhancedCode,
                        ReplyText = recipient.LastReplyText,
                    };
                    if (SuppressionRules.ShouldSuppress(result, update, _options.SuppressingClasses))
                    {
                        await SuppressAsync(recipient.Address, update, now, cancellationToken);
                    }
                }
            }
        }

        await QueueReportAsync(attempt, status, before, results, appliedById, now, plan.Events, cancellationToken);
        await QueueDelayNoticeAsync(attempt, status, before, applied, now, plan.Events, cancellationToken);
    }

    private async Task SuppressAsync(string address, RecipientUpdate update, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await policyStore.AddSuppressionAsync(SuppressionRules.Suppression(address, update, now), cancellationToken);
        metrics.Suppressed();
        logger.RecipientSuppressed(address, update.EnhancedCode);
    }

    /// <summary>
    /// One DSN per message per attempt for the recipients that failed (bounced or expired; NOTIFY includes FAILURE) or
    /// were relayed (NOTIFY includes SUCCESS).
    /// </summary>
    private async Task QueueReportAsync(
        DeliveryAttempted attempt,
        MessageStatus status,
        Dictionary<long, RecipientStatus> before,
        List<RecipientResult> results,
        Dictionary<long, RecipientUpdate> applied,
        DateTimeOffset now,
        List<MessageEvent> eventSink,
        CancellationToken cancellationToken)
    {
        var entries = new List<DsnRecipient>();
        foreach (var result in results)
        {
            var recipient = before[result.RecipientId];
            RecipientState state;
            if (applied.TryGetValue(result.RecipientId, out var update))
            {
                state = update.State;
            }
            else if (AlreadyFinalisedBy(recipient, result))
            {
                // Redelivery after a crash between CompleteAttemptAsync and the DSN's StoreAsync: the first run made
                // the recipient final but may not have stored its DSN. Rebuilding it under the same deterministic id
                // stores it if missing and is a no-op if not.
                state = recipient.State;
            }
            else
            {
                continue;
            }

            var notify = DsnRequest.ParseNotify(recipient.Notify);
            var entry = state switch
            {
                RecipientState.Bounced or RecipientState.Expired when notify.HasFlag(NotifyConditions.Failure) =>
                    Entry(recipient, result, attempt, now, DsnAction.Failed, FailureStatus(state, result)),

                // RFC 3461 §4.1 / §6.2.6.2: MailMesh does not pass NOTIFY on to the next hop, so a delivery to a
                // remote server is reported as "relayed": the destination will not send a success DSN itself.
                RecipientState.Delivered when notify.HasFlag(NotifyConditions.Success) =>
                    Entry(recipient, result, attempt, now, DsnAction.Relayed, IsWellFormed(result.EnhancedCode, '2') ? result.EnhancedCode : "2.0.0"),
                _ => null,
            };

            if (entry is not null)
            {
                entries.Add(entry);
            }
        }

        if (entries.Count == 0)
        {
            return;
        }

        var kind = entries.Any(e => e.Action == DsnAction.Failed) ? FailureKind : SuccessKind;
        var dsnId = DsnRequest.ReportId(attempt.MessageId, attempt.LeaseId);
        await dsn.QueueAsync(attempt.MessageId, dsnId, kind, entries, cancellationToken, eventSink);
    }

    /// <summary>
    /// RFC 3461 §4.1 NOTIFY=DELAY: once a recipient has been deferred for <see cref="QueueOptions.DelayNotifyAfter"/>,
    /// one "delayed" DSN per message and domain (the id derives from both, so later deferrals add none).
    /// </summary>
    private async Task QueueDelayNoticeAsync(
        DeliveryAttempted attempt,
        MessageStatus status,
        Dictionary<long, RecipientStatus> before,
        IReadOnlyList<RecipientUpdate> applied,
        DateTimeOffset now,
        List<MessageEvent> eventSink,
        CancellationToken cancellationToken)
    {
        if (now - status.ReceivedAt < _options.DelayNotifyAfter)
        {
            return;
        }

        var entries = applied
            .Where(u => u.State == RecipientState.Deferred && DsnRequest.ParseNotify(before[u.RecipientId].Notify).HasFlag(NotifyConditions.Delay))
            .Select(u => new DsnRecipient
            {
                Address = before[u.RecipientId].Address,
                OriginalRecipient = before[u.RecipientId].OriginalRecipient,
                Action = DsnAction.Delayed,
                Status = IsWellFormed(u.EnhancedCode, '4') ? u.EnhancedCode! : "4.0.0",
                RemoteMta = u.RemoteHost,
                ReplyCode = u.ReplyCode,
                ReplyEnhancedCode = u.EnhancedCode,
                ReplyText = u.ReplyText,
                LastAttemptAt = u.AttemptedAt,
                WillRetryUntil = status.ReceivedAt + _options.MaxAge,
            })
            .ToList();
        if (entries.Count == 0)
        {
            return;
        }

        var dsnId = DsnRequest.DelayId(attempt.MessageId, attempt.Domain);
        await dsn.QueueAsync(attempt.MessageId, dsnId, DelayKind, entries, cancellationToken, eventSink);
    }

    /// <summary>
    /// The number of the attempt that produced the result. The spool counts an attempt when it is claimed, so the
    /// recipient's count before this result is applied is this attempt's number (1 for the first).
    /// </summary>
    internal static int AttemptNumber(RecipientStatus recipient) => Math.Max(1, recipient.Attempts);

    private static bool AlreadyFinalisedBy(RecipientStatus recipient, RecipientResult result) =>
        recipient.State is RecipientState.Bounced or RecipientState.Expired or RecipientState.Delivered
        && (recipient.State == RecipientState.Delivered) == (result.Outcome == DeliveryOutcome.Delivered)
        && recipient.LastReplyCode == result.ReplyCode
        && string.Equals(recipient.LastEnhancedCode, result.EnhancedCode, StringComparison.Ordinal);

    private static DsnRecipient Entry(RecipientStatus recipient, RecipientResult result, DeliveryAttempted attempt, DateTimeOffset now, DsnAction action, string status) =>
        new()
        {
            Address = recipient.Address,
            OriginalRecipient = recipient.OriginalRecipient,
            Action = action,
            Status = status,
            RemoteMta = attempt.RemoteHost,
            ReplyCode = result.ReplyCode,
            ReplyEnhancedCode = result.EnhancedCode,
            ReplyText = result.ReplyText,
            LastAttemptAt = attempt.CompletedAt <= now ? attempt.CompletedAt : now,
        };

    /// <summary>
    /// RFC 3463: a bounce reports the destination's permanent status; an expiry reports 4.4.7 "delivery time expired"
    /// (the last transient reply stays in Diagnostic-Code).
    /// </summary>
    private static string FailureStatus(RecipientState state, RecipientResult result) =>
        state == RecipientState.Expired ? "4.4.7"
        : IsWellFormed(result.EnhancedCode, '5') ? result.EnhancedCode
        : "5.0.0";

    /// <summary>RFC 3463 §2: class "." subject "." detail, with the expected class digit.</summary>
    private static bool IsWellFormed(string? code, char expectedClass)
    {
        if (code is null || code.Length < 5 || code[0] != expectedClass || code[1] != '.')
        {
            return false;
        }

        var parts = code.Split('.');
        return parts.Length == 3 && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit));
    }

    /// <summary>The stored class name as the contract's enum (null for none, or a name this build does not know).</summary>
    internal static BounceClass? BounceClassOf(string? name) =>
        name is not null && Enum.TryParse<BounceClass>(name, out var cls) ? cls : null;

    private static MessageEventType EventType(RecipientState state) => state switch
    {
        RecipientState.Delivered => MessageEventType.Delivered,
        RecipientState.Bounced => MessageEventType.Bounced,
        RecipientState.Expired => MessageEventType.Expired,
        RecipientState.Suppressed => MessageEventType.Suppressed,
        _ => MessageEventType.Deferred,
    };
}

/// <summary>One recorded result to apply, with the trace context it was recorded under.</summary>
internal sealed record ResultToApply(DeliveryAttempted Attempt, string? TraceParent);
