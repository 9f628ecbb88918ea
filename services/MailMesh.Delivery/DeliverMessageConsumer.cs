using System.Diagnostics;
using System.Data.Common;
using System.Net;
using MailMesh.Contracts;
using MailMesh.Delivery.Dkim;
using MailMesh.Delivery.Shaping;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Bounces;
using MailMesh.Storage;
using MailMesh.Storage.Content;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>
/// Delivers the recipients of one message at one domain and records one <see cref="DeliveryAttempted"/> with a result
/// per recipient in the spool's outbox. SMTP and DNS failures are results (Deferred or Bounced), never exceptions:
/// Queue decides what happens next.
/// </summary>
/// <remarks>
/// <para>
/// The lease is the guard against delivering twice. The attempt starts by taking it (<see cref="ISpool.StartAttemptAsync"/>:
/// one conditional update that also reads the message), and sends nothing when that fails: the lease was re-issued, or
/// the same work item is already being delivered by another consumer (the broker redelivered it). While the attempt
/// runs, <see cref="AttemptLease"/> renews the lease and cancels the attempt before MAIL FROM or the end of data once it
/// is lost. Once the final "." is sent nothing cancels the transaction.
/// </para>
/// <para>
/// The result is recorded in the spool directly (<see cref="ISpool.RecordResultAsync"/>), retried on its own with
/// back-off until the spool answers, never by re-running the SMTP transaction (the lease's clock stops while the spool
/// is unreachable, see <see cref="RecordAsync"/>); the bus carries it only where that cannot help. Only the start
/// (taking the lease) can throw, and is retried by the definition.
/// </para>
/// </remarks>
internal sealed class DeliverMessageConsumer(
    ISpool spool,
    MxCache resolver,
    SmtpDeliveryAgent agent,
    MessageSigner signer,
    ArcSealer sealer,
    ContentBudget contentBudget,
    BounceClassifier classifier,
    IOptions<ReturnPathOptions> returnPath,
    DeliveryMetrics metrics,
    IOptions<DeliveryOptions> options,
    TimeProvider time,
    ILogger<DeliverMessageConsumer> logger,
    Pools.PoolSelector pools,
    Shaper shaper,
    DeliverySlots slots,
    IHostApplicationLifetime lifetime) : IConsumer<DeliverMessage>, IConsumer<DeliverMessages>
{
    /// <summary>Lease length when the work item does not say (an older Queue) and its lease has already run out.</summary>
    private static readonly TimeSpan FallbackLeaseDuration = TimeSpan.FromMinutes(1);

    /// <summary>Further tries of a lease take whose answer was lost, as the same owner, before the consume fails.</summary>
    private const int MaxTakeRetries = 3;

    private readonly DeliveryOptions _options = options.Value;

    /// <summary>One work item: its attempt continues the consume span, which MassTransit put in the message's trace.</summary>
    public Task Consume(ConsumeContext<DeliverMessage> context) =>
        AttemptAsync(context, context.Message, Activity.Current?.Context ?? default, handBack: CancellationToken.None);

    /// <summary>
    /// Several work items of one claim (issue 8): each is attempted as if it had come alone, at once, within
    /// <see cref="DeliverySlots"/>, its span in its own message's trace (<see cref="DeliverMessage.TraceParent"/>). Only
    /// an attempt's start can throw (taking the lease); the consume then fails after every other item has finished, and
    /// MassTransit's retry repeats the batch: items already attempted are not attempted again, because their lease is
    /// held by this consume's owner or their result is recorded, so a new consume cannot take it.
    /// </summary>
    /// <remarks>
    /// A replica holds at most Delivery:ConcurrentDeliveries consumes, so with batches up to that many times
    /// Queue:DispatchBatchSize work items, of which it attempts ConcurrentDeliveries at once. An item that gets its slot
    /// once this process is stopping is not started: it goes back to Queue not attempted and due at once (as a one-item
    /// consume not yet started goes back to the broker), for another replica.
    /// </remarks>
    public async Task Consume(ConsumeContext<DeliverMessages> context)
    {
        var consume = Activity.Current?.Context ?? default;
        await Task.WhenAll(context.Message.Jobs.Select(job =>
            AttemptAsync(context, job, Telemetry.ParseTraceParent(job.TraceParent) ?? consume, lifetime.ApplicationStopping)));
    }

    /// <param name="handBack">Once cancelled, an item that has its slot and lease is handed back not attempted instead
    /// of delivered (see <see cref="Consume(ConsumeContext{DeliverMessages})"/>).</param>
    private async Task AttemptAsync(ConsumeContext context, DeliverMessage request, ActivityContext parent, CancellationToken handBack)
    {
        using var slot = await slots.AcquireAsync(context.CancellationToken);
        var startedAt = time.GetUtcNow();
        var started = time.GetTimestamp();
        var duration = request.LeaseDuration is { } configured && configured > TimeSpan.Zero ? configured
            : request.LeaseExpiresAt - startedAt > TimeSpan.Zero ? request.LeaseExpiresAt - startedAt
            : FallbackLeaseDuration;

        // Take the lease (a fresh owner per consume): fails when Queue re-issued it or another consumer holds it.
        var owner = Guid.NewGuid();
        var confirmedUntil = startedAt + duration;
        var message = await TakeLeaseAsync(request, owner, confirmedUntil, context.CancellationToken);
        if (message is null)
        {
            metrics.Lease("not_taken");
            DeliveryLog.LeaseNotTaken(logger, request.MessageId, request.Domain, request.LeaseId);
            return;
        }

        metrics.Lease("taken");

        // Inline content is a rented buffer: given back when this consume ends, whichever way the attempt went (also
        // by the attempt's AttemptContent, when it got that far).
        using var contentLease = message.ContentLease;
        await using var lease = AttemptLease.Start(spool, request.MessageId, request.LeaseId, owner, duration, confirmedUntil, _options, time, logger);

        // The attempt's span continues the consume span, which is in the message's own trace (Queue dispatches every
        // attempt under the context stored at acceptance), and also links to the span that accepted the message.
        var links = Telemetry.ParseTraceParent(message.TraceParent) is { } accepted ? new[] { new ActivityLink(accepted) } : null;
        using var activity = DeliveryMetrics.ActivitySource.StartActivity(
            ActivityKind.Client, parentContext: parent, links: links, name: "smtp.deliver");
        activity?.SetTag("mailmesh.message.id", request.MessageId);
        activity?.SetTag("mailmesh.recipient.domain", request.Domain);
        activity?.SetTag("mailmesh.recipients", request.Recipients.Count);

        AttemptOutcome outcome;
        using (var attempt = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lease.Token))
        {
            try
            {
                outcome = handBack.IsCancellationRequested
                    ? HandedBack(request, time.GetUtcNow())
                    : await DeliverAsync(request, message, attempt.Token);
            }
            catch (OperationCanceledException) when (lease.IsLost)
            {
                // Stopped before the end of data: nothing was delivered by this attempt, and its recipients belong to
                // another lease (or will, when this one runs out). There is no result to record.
                metrics.Lease("lost");
                DeliveryLog.LeaseLost(logger, request.MessageId, request.Domain, request.LeaseId, lease.Reason);
                activity?.SetStatus(ActivityStatusCode.Error, "lease lost");
                return;
            }
            catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
            {
                // Shutting down before the end of data: the recipients wait for the next attempt (RFC 3463 4.3.2).
                outcome = All(request, DeliveryOutcome.Deferred, 451, "4.3.2", "Delivery stopped before the end of the transaction (shutdown)");
            }
        }

        // Every reply that is not a delivery gets its bounce class here, the one place all results pass: the destination's
        // answers at MAIL, RCPT and the end of data, and the ones MailMesh made up (DNS, connection, TLS, local refusals).
        outcome = outcome with { Results = [.. outcome.Results.Select(classifier.Classify)] };

        var completedAt = time.GetUtcNow();
        var attempted = new DeliveryAttempted
        {
            MessageId = request.MessageId,
            Domain = request.Domain,
            LeaseId = request.LeaseId,
            Results = outcome.Results,
            RemoteHost = outcome.RemoteHost,
            RemoteAddress = outcome.RemoteAddress,
            StartedAt = startedAt,
            CompletedAt = completedAt,
            Tls = outcome.Tls,
        };

        // Never cancelled by the consumer's token: this is the record of what the destination answered.
        await RecordAsync(context, attempted, lease);

        var delivered = outcome.Results.Count(r => r.Outcome == DeliveryOutcome.Delivered);
        var deferred = outcome.Results.Count(r => r.Outcome == DeliveryOutcome.Deferred);
        var bounced = outcome.Results.Count(r => r.Outcome == DeliveryOutcome.Bounced);
        foreach (var result in outcome.Results)
        {
            metrics.Recipient(Name(result.Outcome), result.Class);
        }

        var summary = delivered == outcome.Results.Count ? "delivered"
            : deferred == outcome.Results.Count ? "deferred"
            : bounced == outcome.Results.Count ? "bounced"
            : "partial";
        metrics.Attempt(summary, outcome.RemoteAddress, time.GetElapsedTime(started));
        activity?.SetTag("server.address", outcome.RemoteAddress);
        activity?.SetTag("mailmesh.delivery.outcome", summary);
        if (summary != "delivered")
        {
            activity?.SetStatus(ActivityStatusCode.Error, outcome.Results.FirstOrDefault(r => r.Outcome != DeliveryOutcome.Delivered)?.ReplyText);
        }

        DeliveryLog.Attempted(logger, request.MessageId, request.Domain, delivered, deferred, bounced, outcome.RemoteHost ?? "no connection");
    }

    /// <summary>
    /// Records the result in the spool's outbox, retrying only that write, with back-off, until the spool answers; the
    /// SMTP transaction is never repeated for a failed write. The record is conditional on the lease (its id is still the
    /// recipients' current one), so it is safe at any time, even past the lease's nominal expiry: true means nobody
    /// re-claimed the work and the result is in (once: one outbox row per lease), false that the lease was re-issued.
    /// While the spool is unreachable for everyone (a database restart) the lease cannot be re-issued, and Queue
    /// stops its clock for that time, so retrying until the database is back keeps the lease this attempt's.
    /// </summary>
    /// <remarks>
    /// The bus is kept for what retrying cannot cover: the result is published once (for Queue to record through the
    /// same conditional, idempotent write) when the lease this process last confirmed is about to run out while the
    /// spool stays out of its reach (only this process may be cut off from the database, while Queue still reaches it
    /// and will re-issue the lease on time), and when this process gives up (shutdown, or
    /// <see cref="DeliveryOptions.ResultRetryTimeout"/>). The spool retries go on after a publish.
    /// </remarks>
    private async Task RecordAsync(ConsumeContext context, DeliveryAttempted attempted, AttemptLease lease)
    {
        // Under the attempt's span: Queue applies the result in the message's trace, as a child of this attempt.
        var pending = LeasedWork.ToPendingResult(attempted);
        var giveUpAt = time.GetUtcNow() + _options.ResultRetryTimeout;
        var failures = 0;
        var published = false;
        while (true)
        {
            if (lease.IsReissued)
            {
                // A renewal was refused: the lease is another attempt's, and so is the result (or Queue already took the
                // published one and applied it).
                Finish(published ? "published" : "stale", attempted);
                return;
            }

            try
            {
                var recorded = await WithTimeoutAsync(token => spool.RecordResultAsync(pending, time.GetUtcNow(), token), CancellationToken.None);
                Finish(recorded ? "recorded" : published ? "published" : "stale", attempted);
                return;
            }
            catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException)
            {
                failures++;
                var now = time.GetUtcNow();
                var why = context.CancellationToken.IsCancellationRequested ? "shutting down"
                    : now >= giveUpAt ? $"Delivery:ResultRetryTimeout ({_options.ResultRetryTimeout}) passed"
                    : null;
                if (!published && (why is not null || now + _options.StoreTimeout >= lease.ConfirmedUntil - lease.Margin))
                {
                    published = await PublishAsync(context, attempted, why ?? $"its lease is confirmed only until {lease.ConfirmedUntil:O}");
                }

                if (why is not null)
                {
                    if (published)
                    {
                        metrics.Result("published");
                        DeliveryLog.RecordGivenUp(logger, attempted.MessageId, attempted.LeaseId, failures, why);
                    }
                    else
                    {
                        metrics.Result("lost");
                        DeliveryLog.ResultLost(logger, ex, attempted.MessageId, attempted.LeaseId);
                    }

                    return;
                }

                var delay = RecordRetryDelay(failures);
                DeliveryLog.RecordFailed(logger, ex, attempted.MessageId, attempted.LeaseId, failures, delay);
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

    /// <summary>
    /// The wait before the next try of a result write: 200 ms, doubling, at most <see cref="MaxRecordRetryDelay"/>. The
    /// cap is short because the write races the lease once the database is back: a database restart shorter than
    /// Queue:LeaseClockGap does not stop the lease clock, and with 5 s steps (before) a result of a short lease could
    /// still be waiting when Queue re-claimed the work and sent it again. One small write per second per waiting result
    /// is nothing to a database that is coming back.
    /// </summary>
    internal static TimeSpan RecordRetryDelay(int failures) =>
        TimeSpan.FromMilliseconds(Math.Min(MaxRecordRetryDelay.TotalMilliseconds, 100 * Math.Pow(2, Math.Min(Math.Max(failures, 1), 16))));

    internal static readonly TimeSpan MaxRecordRetryDelay = TimeSpan.FromSeconds(1);

    private void Finish(string outcome, DeliveryAttempted attempted)
    {
        metrics.Result(outcome);
        if (outcome == "stale")
        {
            DeliveryLog.ResultStale(logger, attempted.MessageId, attempted.LeaseId);
        }
    }

    /// <summary>Publishes the result for Queue to record (bounded by StoreTimeout); false if the bus did not take it.</summary>
    private async Task<bool> PublishAsync(ConsumeContext context, DeliveryAttempted attempted, string why)
    {
        try
        {
            await WithTimeoutAsync(async token =>
            {
                await context.Publish(attempted, token);
                return true;
            }, CancellationToken.None);
            DeliveryLog.ResultPublished(logger, attempted.MessageId, attempted.LeaseId, why);
            return true;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            DeliveryLog.PublishFailed(logger, ex, attempted.MessageId, attempted.LeaseId);
            return false;
        }
    }

    /// <summary>
    /// Takes the lease as <paramref name="owner"/>. A take whose answer was lost (a timeout, a dropped connection) may
    /// still have committed, so it is asked again as the same owner, which the conditional take lets back in; asked as a
    /// new owner it would find the lease held by nobody alive and leave the work until the lease ran out (issue 8 load
    /// runs: 13 of 1,500 messages stuck for the whole lease). Retries stay well inside the lease; after them the
    /// consume fails and MassTransit's retry starts over.
    /// </summary>
    private async Task<StoredMessage?> TakeLeaseAsync(DeliverMessage request, Guid owner, DateTimeOffset confirmedUntil, CancellationToken cancellationToken)
    {
        for (var failures = 0; ; failures++)
        {
            try
            {
                return await WithTimeoutAsync(
                    token => spool.StartAttemptAsync(request.MessageId, request.LeaseId, owner, confirmedUntil, token), cancellationToken);
            }
            catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException && failures < MaxTakeRetries)
            {
                var delay = TimeSpan.FromMilliseconds(200 * (1 << failures));
                DeliveryLog.TakeRetried(logger, ex, request.MessageId, request.LeaseId, failures + 1, delay);
                await Task.Delay(delay, time, cancellationToken);
            }
        }
    }

    /// <summary>One spool (or bus) call, bounded by <see cref="DeliveryOptions.StoreTimeout"/> even if it ignores its token.</summary>
    private Task<T> WithTimeoutAsync<T>(Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken) =>
        LeasedWork.WithTimeoutAsync(operation, _options.StoreTimeout, time, cancellationToken);

    private async Task<AttemptOutcome> DeliverAsync(DeliverMessage request, StoredMessage message, CancellationToken cancellationToken)
    {
        IReadOnlyList<MxHost> hosts;
        if (TryParseAddressLiteral(request.Domain, out var literal))
        {
            // RFC 5321 §5.1: an address literal is the destination itself; no DNS.
            hosts = [new MxHost { Name = request.Domain, Preference = 0, Addresses = [literal.ToString()] }];
        }
        else
        {
            MxResolved resolved;
            try
            {
                resolved = await resolver.ResolveAsync(request.Domain, cancellationToken);
            }
            catch (RequestTimeoutException)
            {
                DeliveryLog.ResolveTimedOut(logger, request.Domain, options.Value.ResolveTimeout);
                return All(request, DeliveryOutcome.Deferred, 451, "4.4.3", $"MX lookup of {request.Domain} timed out");
            }

            switch (resolved.Status)
            {
                case MxStatus.NullMx:
                    // RFC 7505 §4.1: "556 5.1.10 Recipient address has null MX".
                    return All(request, DeliveryOutcome.Bounced, 556, "5.1.10", $"Recipient address has null MX: {request.Domain} accepts no mail");
                case MxStatus.NoSuchDomain:
                    // RFC 3463 §3.2: 5.1.2 bad destination system address.
                    return All(request, DeliveryOutcome.Bounced, 550, "5.1.2", resolved.Error ?? $"Domain {request.Domain} does not exist");
                case MxStatus.TemporaryFailure:
                    // RFC 3463 §3.5: 4.4.3 directory server failure (DNS).
                    return All(request, DeliveryOutcome.Deferred, 451, "4.4.3", resolved.Error ?? $"MX lookup of {request.Domain} failed");
            }

            hosts = resolved.Hosts;
            if (hosts.Count == 0)
            {
                return All(request, DeliveryOutcome.Deferred, 451, "4.4.3", $"No mail exchanger addresses for {request.Domain}");
            }
        }

        // Issue 11 (docs/delivery.md "IP pools"): the source address, after the MX lookup (its address families) and
        // before the content is copied. When every address of the pool reached its warm-up cap the recipients wait
        // without the attempt counting (NotAttempted): Queue retries them without advancing their back-off.
        var source = pools.IsEnabled
            ? await pools.ChooseAsync(request.Pool ?? message.Pool, message.Sender, Families(hosts), cancellationToken)
            : Pools.PoolChoice.None;
        if (source.Refusal is { } refusal)
        {
            // RFC 3463 4.7.0: other or undefined security status (KumoMTA and Postfix use it for local sending limits).
            return NotAttempted(request, 451, "4.7.0", refusal);
        }

        // Traffic shaping (docs/delivery.md): a suspended site, or a site whose message rate has no token in time, hands
        // the work back to Queue not attempted (no attempt counted), before anything is read or sent.
        // Budgets and suspensions are per site and source address (the pool's choice above; "default" without pools).
        var site = shaper.Resolve(request.Domain, hosts);
        var sourceIp = source.Source?.Address.ToString() ?? Shaper.DefaultSourceIp;
        if (site is not null && await shaper.BeforeMessageAsync(site, sourceIp, cancellationToken) is { } hold)
        {
            ShapingLog.Held(logger, request.MessageId, request.Domain, site.Name, hold.Until, hold.Reason);
            return new AttemptOutcome(hold.Results(request.Recipients), null, null);
        }

        // After the MX lookup, so an attempt that cannot go anywhere copies nothing; a large message's local copy only
        // within Delivery:MaxContentBytes (its directory is size-capped in the chart).
        using var room = message.DetachedContentLength is { } detached
            ? await contentBudget.TryAcquireAsync(detached, _options.ConnectionSlotTimeout, time, cancellationToken)
            : null;
        if (message.DetachedContentLength is not null && room is null)
        {
            // RFC 3463 4.3.1: insufficient system storage, for now.
            DeliveryLog.ContentBudgetFull(logger, request.MessageId, message.ContentLength, _options.MaxContentBytes);
            return All(request, DeliveryOutcome.Deferred, 451, "4.3.1", "Too many large messages are being delivered at once; trying again later");
        }

        AttemptContent? content;
        try
        {
            content = await AttemptContent.LoadAsync(spool, message, _options.ContentDirectory, cancellationToken);
        }
        catch (Exception ex) when (ex is DbException or TimeoutException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            // RFC 3463: 4.3.1 (no room for the local copy) or 4.3.0; the next attempt tries again.
            DeliveryLog.ContentNotLoaded(logger, ex, request.MessageId, message.ContentLength);
            return All(request, DeliveryOutcome.Deferred, 451, ex is IOException and not EndOfStreamException ? "4.3.1" : "4.3.0",
                "The message could not be read from the spool for this attempt");
        }

        await using var owned = content;
        if (content is null)
        {
            // Purged under a live lease: only an operator's purge does that; nothing is left to send.
            return All(request, DeliveryOutcome.Deferred, 451, "4.3.0", "The message's content is no longer in the spool");
        }

        var inline = content.IsFileBacked ? message with { Content = content.Memory, DetachedContentLength = null } : message;

        // The pool header (issue 11) never leaves: removed before signing, whoever sent it.
        var body = content.Memory;
        if (MailMesh.Smtp.PoolHeader.IsPresent(body.Span))
        {
            body = MailMesh.Smtp.PoolHeader.Remove(body.Span);
            inline = inline with { Content = body };
        }

        // VERP (ReturnPath:Domain): the envelope sender becomes a return path naming this message, so a bounce or complaint
        // that comes back later is matched to it (Queue's ReturnedMail). Never for the null sender (DSNs stay <>).
        if (returnPath.Value.IsEnabled && inline.Sender.Length > 0 && inline.Origin != MessageOrigin.Dsn)
        {
            inline = inline with { Sender = returnPath.Value.For(inline.Id) };
        }

        // DKIM (RFC 6376): the one place every outgoing message passes (SMTP and HTTP submissions, DSNs). The stored
        // octets are signed as they are about to be sent and the field goes in front of them; the spool keeps the
        // message unsigned, so every attempt carries exactly one MailMesh signature. No key configured: no work at all.
        var signature = ReadOnlyMemory<byte>.Empty;
        if (signer.IsEnabled)
        {
            var signed = signer.Sign(body.Span);
            metrics.Dkim(signed.Outcome);
            signature = signed.Field;
        }

        // ARC (RFC 8617): mail received from outside and sent on gets our ARC set in front, above the DKIM-Signature
        // (the two cover disjoint fields, so their order does not matter to either). Disabled: not even looked at.
        if (sealer.IsEnabled)
        {
            var arc = sealer.Seal(body.Span);
            metrics.Arc(arc.Outcome);
            if (arc.IsSealed)
            {
                signature = signature.IsEmpty ? arc.Fields : (byte[])[.. arc.Fields.Span, .. signature.Span];
            }
        }

        var outcome = await agent.DeliverAsync(request.Domain, inline, request.Recipients, hosts, signature, site, cancellationToken, source.Source);
        if (site is not null)
        {
            // Automation: throttling replies suspend the site or lower its limits for every replica.
            await shaper.ObserveAsync(site, sourceIp, outcome.Results, cancellationToken);
        }

        return outcome;
    }

    /// <summary>The IP address families of the exchangers' addresses (what a pool address must match).</summary>
    private static HashSet<System.Net.Sockets.AddressFamily> Families(IReadOnlyList<MxHost> hosts) =>
        [.. hosts.SelectMany(h => h.Addresses).Select(a => IPAddress.TryParse(a, out var ip) ? ip.AddressFamily : System.Net.Sockets.AddressFamily.Unknown)
            .Where(f => f != System.Net.Sockets.AddressFamily.Unknown)];

    /// <summary>
    /// Every recipient back to Queue not attempted and due at once (<see cref="RecipientResult.NotAttemptedUntil"/> now):
    /// this process is stopping and had not started the item. RFC 3463 4.3.2: system not accepting network messages.
    /// </summary>
    private static AttemptOutcome HandedBack(DeliverMessage request, DateTimeOffset now) =>
        new([.. request.Recipients.Select(r => SmtpDeliveryAgent.Result(r, DeliveryOutcome.Deferred, 451, "4.3.2",
            "Not attempted: this Delivery replica was stopping; handed back for another") with { NotAttemptedUntil = now })], null, null);

    /// <summary>Every recipient deferred without an attempt made (Queue does not count it, <see cref="RecipientResult.NotAttempted"/>).</summary>
    private static AttemptOutcome NotAttempted(DeliverMessage request, int code, string enhanced, string text) =>
        new([.. request.Recipients.Select(r => SmtpDeliveryAgent.Result(r, DeliveryOutcome.Deferred, code, enhanced, text) with { NotAttempted = true })], null, null);

    private static bool TryParseAddressLiteral(string domain, out IPAddress address)
    {
        address = IPAddress.None;
        if (domain.Length < 3 || domain[0] != '[' || domain[^1] != ']')
        {
            return false;
        }

        var inner = domain[1..^1];
        if (inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
        {
            inner = inner[5..];
        }

        return IPAddress.TryParse(inner, out address!);
    }

    private static AttemptOutcome All(DeliverMessage request, DeliveryOutcome outcome, int code, string enhanced, string text) =>
        new(request.Recipients.Select(r => SmtpDeliveryAgent.Result(r, outcome, code, enhanced, text)).ToList(), null, null);

    private static string Name(DeliveryOutcome outcome) => outcome switch
    {
        DeliveryOutcome.Delivered => "delivered",
        DeliveryOutcome.Deferred => "deferred",
        _ => "bounced",
    };
}

/// <summary>
/// Concurrency is Delivery:ConcurrentDeliveries. SMTP failures are results, not exceptions, and the result is recorded
/// without throwing, so the retry below only ever repeats the start of an attempt (taking the lease, which fails while
/// the spool is unreachable), with back-off rather than a burst of reconnects after a database restart. A work item
/// that still fails is re-driven by Queue when its lease expires.
/// </summary>
internal sealed class DeliverMessageConsumerDefinition(IOptions<DeliveryOptions> options)
    : LeasedWorkConsumerDefinition<DeliverMessageConsumer>(options.Value.ConcurrentDeliveries);
