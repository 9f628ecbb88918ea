using MailMesh.Contracts;
using MailMesh.Storage;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;

namespace MailMesh.Queue.Tests;

public sealed class DeliveryAttemptedConsumerTests
{
    [Fact]
    public async Task Delivered_recipient_becomes_final_and_is_announced_without_DSN()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();
        var job = await host.ClaimAsync(id);

        await AttemptAsync(host, job, DeliveryOutcome.Delivered, 250, "2.0.0", "ok queued as 1234");

        var recipient = Assert.Single((await host.Spool.GetStatusAsync(id, default))!.Recipients);
        Assert.Equal(RecipientState.Delivered, recipient.State);
        Assert.Contains(host.Probe.Published<MessageEvent>(), e => e.MessageId == id && e.Type == MessageEventType.Delivered);
        Assert.Empty(host.Probe.Published<MessageReceived>());
        Assert.Null(await host.Spool.GetMessageAsync(DsnRequest.ReportId(id, job.LeaseId), default));
    }

    [Fact]
    public async Task Deferred_recipient_gets_its_next_attempt_after_the_backoff()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();
        var job = await host.ClaimAsync(id);
        host.Time.Advance(TimeSpan.FromSeconds(30));

        await AttemptAsync(host, job, DeliveryOutcome.Deferred, 451, "4.3.0", "try again later");

        var recipient = Assert.Single((await host.Spool.GetStatusAsync(id, default))!.Recipients);
        Assert.Equal(RecipientState.Deferred, recipient.State);
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromMinutes(5), recipient.NextAttemptAt);
        Assert.Equal(451, recipient.LastReplyCode);
        Assert.Contains(host.Probe.Published<MessageEvent>(), e => e.Type == MessageEventType.Deferred);

        // Not due before its time; due at it.
        Assert.Empty(await host.Spool.ClaimDueAsync(host.Time.GetUtcNow().AddMinutes(4), 10, TimeSpan.FromMinutes(10), default));
        var second = Assert.Single(await host.Spool.ClaimDueAsync(host.Time.GetUtcNow().AddMinutes(5), 10, TimeSpan.FromMinutes(10), default));
        Assert.Equal(2, second.Recipients[0].Attempt);
    }

    [Theory]
    [InlineData(550, "5.1.1", true)]
    [InlineData(556, "5.1.10", true)]
    [InlineData(552, "5.2.2", false)]
    [InlineData(554, "5.7.1", false)]
    public async Task A_hard_bounce_suppresses_the_address_and_other_bounces_do_not(int code, string enhanced, bool suppressed)
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(recipients: [new NewRecipient { Address = "Gone@Dest.Example" }]);
        var job = await host.ClaimAsync(id);

        await AttemptAsync(host, job, DeliveryOutcome.Bounced, code, enhanced, "no");

        var suppression = await host.PolicyStore.GetSuppressionAsync("gone@dest.example", default);
        Assert.Equal(suppressed, suppression is not null);
        if (suppression is not null)
        {
            Assert.Contains(enhanced, suppression.Reason, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Hard_bounces_are_not_suppressed_when_switched_off()
    {
        await using var host = await QueueTestHost.StartAsync(o => o.SuppressHardBounces = false);
        var id = await host.StoreAsync(recipients: [new NewRecipient { Address = "gone@dest.example" }]);
        var job = await host.ClaimAsync(id);

        await AttemptAsync(host, job, DeliveryOutcome.Bounced, 550, "5.1.1", "user unknown");

        Assert.Null(await host.PolicyStore.GetSuppressionAsync("gone@dest.example", default));
    }

    [Fact]
    public async Task Bounced_recipient_gets_a_DSN_to_the_sender()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(envelopeId: "env-42", recipients: [new NewRecipient { Address = "rcpt@dest.example", OriginalRecipient = "rfc822;rcpt@dest.example" }]);
        var job = await host.ClaimAsync(id);

        await AttemptAsync(host, job, DeliveryOutcome.Bounced, 550, "5.1.1", "5.1.1 <rcpt@dest.example>: user unknown");

        Assert.Equal(RecipientState.Bounced, Assert.Single((await host.Spool.GetStatusAsync(id, default))!.Recipients).State);
        var dsnId = DsnRequest.ReportId(id, job.LeaseId);
        var dsn = await host.Spool.GetMessageAsync(dsnId, default);
        Assert.NotNull(dsn);
        Assert.Equal(string.Empty, dsn.Sender);
        Assert.Equal(MessageOrigin.Dsn, dsn.Origin);
        var dsnStatus = await host.Spool.GetStatusAsync(dsnId, default);
        Assert.Equal(QueueTestHost.Sender, Assert.Single(dsnStatus!.Recipients).Address);

        var recipient = RecipientGroup(dsn, out var perMessage);
        Assert.Equal("rfc822; rcpt@dest.example", recipient["Final-Recipient"]);
        Assert.Equal("rfc822; rcpt@dest.example", recipient["Original-Recipient"]);
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("5.1.1", recipient["Status"]);
        Assert.Equal("smtp; 550 5.1.1 <rcpt@dest.example>: user unknown", recipient["Diagnostic-Code"]);
        Assert.Equal("dns; mx.dest.example", recipient["Remote-MTA"]);
        Assert.Equal("env-42", perMessage["Original-Envelope-Id"]);
        Assert.Equal("dns; " + QueueTestHost.Hostname, perMessage["Reporting-MTA"]);

        Assert.Contains(host.Probe.Published<MessageReceived>(), m => m.MessageId == dsnId && m.Sender.Length == 0);
        Assert.Contains(host.Probe.Published<MessageEvent>(), e => e.MessageId == id && e.Type == MessageEventType.DsnQueued);
    }

    [Fact]
    public async Task Message_from_the_null_sender_gets_no_DSN()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(sender: string.Empty);
        var job = await host.ClaimAsync(id);

        await AttemptAsync(host, job, DeliveryOutcome.Bounced, 550, "5.1.1", "user unknown");

        Assert.Equal(RecipientState.Bounced, Assert.Single((await host.Spool.GetStatusAsync(id, default))!.Recipients).State);
        Assert.Null(await host.Spool.GetMessageAsync(DsnRequest.ReportId(id, job.LeaseId), default));
        Assert.Empty(host.Probe.Published<MessageReceived>());
        Assert.Equal(1, (await host.Spool.CountByStateAsync(default)).Values.Sum());
    }

    [Fact]
    public async Task NOTIFY_NEVER_suppresses_the_failure_DSN()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(recipients: [new NewRecipient { Address = "rcpt@dest.example", Notify = "NEVER" }]);
        var job = await host.ClaimAsync(id);

        await AttemptAsync(host, job, DeliveryOutcome.Bounced, 550, "5.1.1", "user unknown");

        Assert.Null(await host.Spool.GetMessageAsync(DsnRequest.ReportId(id, job.LeaseId), default));
    }

    [Fact]
    public async Task Redelivered_result_makes_exactly_one_DSN_and_one_event()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();
        var job = await host.ClaimAsync(id);
        var attempt = Attempt(job, DeliveryOutcome.Bounced, 550, "5.1.1", "user unknown");

        await host.Harness.Bus.Publish(attempt);
        await host.Harness.Bus.Publish(attempt);
        await ConsumedAsync(host, job.LeaseId, 2);

        Assert.Equal(2, (await host.Spool.CountByStateAsync(default)).Values.Sum()); // the original's recipient and one DSN
        Assert.Single(host.Probe.Published<MessageReceived>());
        Assert.Single(host.Probe.Published<MessageEvent>(), e => e.Type == MessageEventType.Bounced);
    }

    [Fact]
    public async Task Result_applied_before_a_crash_still_gets_its_DSN_on_redelivery()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();
        var job = await host.ClaimAsync(id);

        // The first consumer applied the bounce and died before storing the DSN.
        var applied = await host.Spool.CompleteAttemptAsync(id, job.LeaseId,
        [
            new RecipientUpdate
            {
                RecipientId = job.Recipients[0].RecipientId, State = RecipientState.Bounced, AttemptedAt = host.Time.GetUtcNow(),
                ReplyCode = 550, EnhancedCode = "5.1.1", ReplyText = "user unknown", RemoteHost = "mx.dest.example",
            },
        ], default);
        Assert.Single(applied);

        // Its recorded result stays in the outbox and is applied again.
        await using (var scope = host.Provider.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<DeliveryAttemptedConsumer>()
                .ApplyAsync(Attempt(job, DeliveryOutcome.Bounced, 550, "5.1.1", "user unknown"), default);
        }

        Assert.NotNull(await host.Spool.GetMessageAsync(DsnRequest.ReportId(id, job.LeaseId), default));
        Assert.NotNull(await host.PolicyStore.GetSuppressionAsync("rcpt@dest.example", default));
        Assert.DoesNotContain(host.Probe.Published<MessageEvent>(), e => e.Type == MessageEventType.Bounced);
    }

    [Fact]
    public async Task Stale_result_under_an_old_lease_changes_nothing()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();
        var first = await host.ClaimAsync(id);

        // The lease expires; the sweeper claims the recipient again under a new lease.
        host.Time.Advance(host.Options.LeaseDuration + TimeSpan.FromSeconds(1));
        var second = await host.ClaimAsync(id);
        Assert.NotEqual(first.LeaseId, second.LeaseId);

        // Not recorded (the lease is no longer the recipient's), so never applied.
        await host.Harness.Bus.Publish(Attempt(first, DeliveryOutcome.Bounced, 550, "5.1.1", "user unknown"));
        await host.Probe.WaitConsumedAsync<DeliveryAttempted>(m => m.LeaseId == first.LeaseId);

        Assert.Equal(RecipientState.InFlight, Assert.Single((await host.Spool.GetStatusAsync(id, default))!.Recipients).State);
        Assert.Empty(host.Probe.Published<MessageEvent>());
        Assert.Null(await host.Spool.GetMessageAsync(DsnRequest.ReportId(id, first.LeaseId), default));
    }

    [Fact]
    public async Task Recipient_deferred_past_MaxAge_expires_with_a_4_4_7_failure_DSN()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();
        host.Time.Advance(host.Options.MaxAge - TimeSpan.FromMinutes(1));
        var job = await host.ClaimAsync(id);

        await AttemptAsync(host, job, DeliveryOutcome.Deferred, 421, "4.4.2", "4.4.2 connection timed out");

        Assert.Equal(RecipientState.Expired, Assert.Single((await host.Spool.GetStatusAsync(id, default))!.Recipients).State);
        Assert.Contains(host.Probe.Published<MessageEvent>(), e => e.Type == MessageEventType.Expired);
        var dsn = await host.Spool.GetMessageAsync(DsnRequest.ReportId(id, job.LeaseId), default);
        Assert.NotNull(dsn);
        var recipient = RecipientGroup(dsn, out _);
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("4.4.7", recipient["Status"]);
        Assert.Equal("smtp; 421 4.4.2 connection timed out", recipient["Diagnostic-Code"]);
    }

    [Fact]
    public async Task NOTIFY_SUCCESS_gets_a_relayed_DSN()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(recipients: [new NewRecipient { Address = "rcpt@dest.example", Notify = "SUCCESS" }]);
        var job = await host.ClaimAsync(id);

        await AttemptAsync(host, job, DeliveryOutcome.Delivered, 250, "2.0.0", "2.0.0 ok");

        var dsn = await host.Spool.GetMessageAsync(DsnRequest.ReportId(id, job.LeaseId), default);
        Assert.NotNull(dsn);
        var recipient = RecipientGroup(dsn, out _);
        Assert.Equal("relayed", recipient["Action"]);
        Assert.Equal("2.0.0", recipient["Status"]);
    }

    [Fact]
    public async Task NOTIFY_DELAY_gets_one_delay_DSN_after_DelayNotifyAfter()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(recipients: [new NewRecipient { Address = "rcpt@dest.example", Notify = "FAILURE,DELAY" }]);

        // Early deferral: no notice yet.
        var early = await host.ClaimAsync(id);
        await AttemptAsync(host, early, DeliveryOutcome.Deferred, 451, "4.4.1", "no answer");
        Assert.Null(await host.Spool.GetMessageAsync(DsnRequest.DelayId(id, "dest.example"), default));

        host.Time.Advance(host.Options.DelayNotifyAfter);
        var late = await host.ClaimAsync(id);
        await AttemptAsync(host, late, DeliveryOutcome.Deferred, 451, "4.4.1", "no answer");
        var dsn = await host.Spool.GetMessageAsync(DsnRequest.DelayId(id, "dest.example"), default);
        Assert.NotNull(dsn);
        var recipient = RecipientGroup(dsn, out _);
        Assert.Equal("delayed", recipient["Action"]);
        Assert.NotNull(recipient["Will-Retry-Until"]);

        // A later deferral of the same recipient adds no second notice.
        host.Time.Advance(TimeSpan.FromHours(2));
        var later = await host.ClaimAsync(id);
        await AttemptAsync(host, later, DeliveryOutcome.Deferred, 451, "4.4.1", "no answer");
        Assert.Single(host.Probe.Published<MessageReceived>());
    }

    internal static DeliveryAttempted Attempt(DeliveryJob job, DeliveryOutcome outcome, int code, string enhanced, string text) => new()
    {
        MessageId = job.MessageId,
        Domain = job.Domain,
        LeaseId = job.LeaseId,
        RemoteHost = "mx.dest.example",
        RemoteAddress = "192.0.2.25",
        StartedAt = job.LeaseExpiresAt.AddMinutes(-10),
        CompletedAt = job.LeaseExpiresAt.AddMinutes(-10),
        Results = [.. job.Recipients.Select(r => new RecipientResult
        {
            RecipientId = r.RecipientId,
            Address = r.Address,
            Outcome = outcome,
            ReplyCode = code,
            EnhancedCode = enhanced,
            ReplyText = text,
            Stage = ReplyStage.Rcpt,
        })],
    };

    /// <summary>Publishes the result and waits until the consumer has finished with it.</summary>
    private static async Task AttemptAsync(QueueTestHost host, DeliveryJob job, DeliveryOutcome outcome, int code, string enhanced, string text)
    {
        await host.Harness.Bus.Publish(Attempt(job, outcome, code, enhanced, text));
        await ConsumedAsync(host, job.LeaseId, 1);
        Assert.All(host.Probe.Consumed<DeliveryAttempted>(), c => Assert.Null(c.Fault));
    }

    /// <summary>Waits until <paramref name="count"/> results under the lease were consumed.</summary>
    internal static async Task ConsumedAsync(QueueTestHost host, Guid leaseId, int count)
    {
        // The consumer records the result in the outbox; the applier then applies it.
        await host.Probe.WaitConsumedAsync<DeliveryAttempted>(m => m.LeaseId == leaseId, count);
        await host.WaitAppliedAsync(leaseId);
    }

    private static HeaderList RecipientGroup(StoredMessage dsn, out HeaderList perMessage)
    {
        var message = MimeMessage.Load(new MemoryStream(dsn.Content.ToArray()));
        Assert.Equal("auto-replied", message.Headers["Auto-Submitted"]);
        var report = Assert.IsType<MultipartReport>(message.Body);
        var status = Assert.IsType<MessageDeliveryStatus>(report[1]);
        perMessage = status.StatusGroups[0];
        return Assert.Single(status.StatusGroups.Skip(1), g => g.Count > 0);
    }
}
