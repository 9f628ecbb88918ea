using System.Text;
using MailMesh.Contracts;
using MailMesh.Smtp.Client;
using MailMesh.Storage;
using MassTransit.Testing;

namespace MailMesh.Delivery.Tests;

/// <summary>CHUNKING, DSN, SMTPUTF8/IDN and lease handling on the client side.</summary>
public sealed class SmtpExtensionsDeliveryTests
{
    private static byte[] Message(string header = "Subject: test") =>
        Encoding.UTF8.GetBytes($"From: a@origin.test\r\n{header}\r\n\r\nBody.\r\n.dot\r\n");

    [Fact]
    public async Task CHUNKING_sends_every_body_type_by_BDAT_in_64_KiB_chunks()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.Extensions.Add("CHUNKING");
        var body = new StringBuilder("Subject: big\r\n\r\n");
        while (body.Length < 200 * 1024)
        {
            body.Append(".line with a leading dot and caf\u00e9\r\n");
        }

        var content = Encoding.UTF8.GetBytes(body.ToString());
        var stored = f.Store(content, bodyType: BodyType.EightBitMime);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.True(received.Chunked);
        Assert.Equal((content.Length + (64 * 1024) - 1) / (64 * 1024), received.ChunkCount);
        Assert.Equal(content, received.Data);
        Assert.Contains("BODY=8BITMIME", received.MailParameters, StringComparison.Ordinal);
        Assert.DoesNotContain(f.Sink.Commands, c => c.EndsWith(" DATA", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DSN_parameters_go_xtext_encoded_when_the_server_offers_DSN()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.Extensions.Add("DSN");
        var stored = f.Store(f.Store(Message()) with { Id = Guid.NewGuid(), EnvelopeId = "id+1 x=y", Ret = "HDRS" });
        var request = DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test", "b@dest.test");
        request = request with
        {
            Recipients =
            [
                request.Recipients[0] with { Notify = "SUCCESS,FAILURE", OriginalRecipient = "rfc822;a+list=x@dest.test" },
                request.Recipients[1] with { Notify = "NEVER", OriginalRecipient = "utf-8;b\\x{E9}@dest.test" },
            ],
        };

        var attempt = await f.DeliverAsync(request);

        Assert.All(attempt.Results, r => Assert.Equal(DeliveryOutcome.Delivered, r.Outcome));
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.EndsWith("RET=HDRS ENVID=id+2B1+20x+3Dy", received.MailParameters, StringComparison.Ordinal);
        Assert.Contains(f.Sink.Commands, c => c.EndsWith("RCPT TO:<a@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Blist+3Dx@dest.test", StringComparison.Ordinal));
        Assert.Contains(f.Sink.Commands, c => c.EndsWith("RCPT TO:<b@dest.test> NOTIFY=NEVER ORCPT=utf-8;b\\x{E9}@dest.test", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DSN_parameters_are_omitted_when_the_server_lacks_DSN()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var stored = f.Store(f.Store(Message()) with { Id = Guid.NewGuid(), EnvelopeId = "env", Ret = "FULL" });
        var request = DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test");
        request = request with { Recipients = [request.Recipients[0] with { Notify = "SUCCESS", OriginalRecipient = "rfc822;a@dest.test" }] };

        await f.DeliverAsync(request);

        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.DoesNotContain("RET=", received.MailParameters, StringComparison.Ordinal);
        Assert.DoesNotContain("ENVID=", received.MailParameters, StringComparison.Ordinal);
        Assert.Contains(f.Sink.Commands, c => c.EndsWith("RCPT TO:<a@dest.test>", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("rfc822;user@example.com", "rfc822;user@example.com")]
    [InlineData("rfc822;a b+c=d@example.com", "rfc822;a+20b+2Bc+3Dd@example.com")]
    [InlineData("utf-8;\u00fcser@example.com", "utf-8;\\x{FC}ser@example.com")]
    [InlineData("rfc822;\u00fcser@example.com", "utf-8;\\x{FC}ser@example.com")]
    [InlineData("utf-8;a+b@example.com", "utf-8;a\\x{2B}b@example.com")]
    [InlineData("utf-8;b\\x{E9}@example.com", "utf-8;b\\x{E9}@example.com")]
    [InlineData("utf-8;a\\b\\x{zz}@example.com", "utf-8;a\\x{5C}b\\x{5C}x{zz}@example.com")]
    [InlineData("user@example.com", "rfc822;user@example.com")]
    public void ORCPT_is_encoded_per_RFC_3461_and_RFC_6533(string stored, string wire) =>
        Assert.Equal(wire, DsnEncoding.OriginalRecipient(stored));

    [Fact]
    public async Task SMTPUTF8_is_passed_when_the_server_offers_it()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.Extensions.Add("SMTPUTF8");
        var stored = f.Store(f.Store(Message("Subject: caf\u00e9"), sender: "j\u00f6rg@origin.test") with { Id = Guid.NewGuid(), SmtpUtf8 = true });

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "\u00fcser@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.Contains("SMTPUTF8", received.MailParameters.Split(' '));
        Assert.Equal("j\u00f6rg@origin.test", received.MailFrom);
        Assert.Equal(["\u00fcser@dest.test"], received.Recipients);
    }

    [Fact]
    public async Task UTF8_headers_bounce_with_5_6_7_when_the_server_lacks_SMTPUTF8()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var stored = f.Store(f.Store(Message("Subject: caf\u00e9")) with { Id = Guid.NewGuid(), SmtpUtf8 = true });

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Bounced, 553, "5.6.7"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Empty(f.Sink.Messages);
    }

    [Fact]
    public async Task Non_ASCII_local_part_bounces_only_that_recipient_without_SMTPUTF8()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "\u00fcser@dest.test", "ascii@dest.test"));

        Assert.Equal((DeliveryOutcome.Bounced, 553, "5.6.7"), (attempt.Results[0].Outcome, attempt.Results[0].ReplyCode, attempt.Results[0].EnhancedCode));
        Assert.Equal(DeliveryOutcome.Delivered, attempt.Results[1].Outcome);
        Assert.Equal(["ascii@dest.test"], Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Recipients);
    }

    [Fact]
    public async Task Non_ASCII_domains_go_as_A_labels_without_SMTPUTF8()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var stored = f.Store(Message(), sender: "info@b\u00fccher.test");

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@m\u00fcnchen.dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.Equal("info@xn--bcher-kva.test", received.MailFrom);
        Assert.Equal(["rcpt@xn--mnchen-3ya.dest.test"], received.Recipients);
        Assert.DoesNotContain("SMTPUTF8", received.MailParameters, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SMTPUTF8_flag_on_an_all_ASCII_message_is_not_an_obstacle()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var stored = f.Store(f.Store(Message()) with { Id = Guid.NewGuid(), SmtpUtf8 = true });

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.DoesNotContain("SMTPUTF8", Assert.Single(await f.Sink.WaitForMessagesAsync(1)).MailParameters, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_re_issued_lease_is_not_started_and_records_nothing()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var reissued = DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test");
        f.Spool.Reissued[reissued.LeaseId] = true;

        await f.Harness.Bus.Publish(reissued);
        Assert.True(await f.Harness.Consumed.Any<DeliverMessage>(m => m.Context.Message.LeaseId == reissued.LeaseId));
        var live = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(live.Results).Outcome);
        Assert.False(f.Spool.IsRecorded(reissued.LeaseId));
        Assert.False(await f.Harness.Published.Any<DeliveryAttempted>(m => m.Context.Message.LeaseId == reissued.LeaseId));
        Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.Single(f.Sink.Messages);
    }

    [Fact]
    public async Task An_expired_lease_that_was_not_re_issued_is_taken_and_delivered()
    {
        // The work waited in the broker past its lease, but Queue has not claimed the recipients again: taking the
        // lease extends it, and the delivery goes ahead instead of waiting a whole lease for nothing.
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var late = DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test") with { LeaseExpiresAt = DateTimeOffset.UtcNow.AddSeconds(-1) };

        var attempt = await f.DeliverAsync(late);

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
    }

    [Fact]
    public async Task The_same_work_item_delivered_twice_at_once_is_sent_once()
    {
        // The broker redelivers a work item whose first consumer still runs (its channel closed): both carry the same
        // lease, and only the first to take it sends.
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.DataReplyDelay = TimeSpan.FromMilliseconds(300);
        var request = DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test");

        await f.Harness.Bus.Publish(request);
        await f.Harness.Bus.Publish(request);

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single((await f.AttemptedAsync(request.LeaseId)).Results).Outcome);
        Assert.True(await f.Harness.Consumed.Any<DeliverMessage>(m => m.Context.Message.LeaseId == request.LeaseId));
        await DeliveryFixture.WaitUntilAsync(() => f.Spool.Takes >= 2);
        Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.Single(f.Sink.Messages);
    }

    [Fact]
    public async Task A_result_the_spool_refuses_for_a_while_is_recorded_without_repeating_the_transaction()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Spool.FailNextRecords(3);
        var request = DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test");

        var attempt = await f.DeliverAsync(request);

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Equal(4, f.Spool.RecordCalls);
        Assert.Equal(1, f.Spool.Takes);
        Assert.Single(f.Sink.Messages);
    }

    [Fact]
    public async Task A_result_the_spool_never_takes_is_published_once_when_the_attempt_gives_up()
    {
        // The spool stays unreachable (for this process) past Delivery:ResultRetryTimeout: the attempt frees its consumer
        // slot and hands the result to the bus, once, for Queue to record under the same lease.
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Delivery:StoreTimeout"] = "00:00:01",
            ["Delivery:ResultRetryTimeout"] = "00:00:03",
        });
        f.Route("dest.test", f.Sink);
        f.Spool.OnTaken = _ => f.Spool.Unreachable = true;
        var request = DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test") with { LeaseDuration = TimeSpan.FromMinutes(1) };

        await f.Harness.Bus.Publish(request);

        Assert.True(await f.Harness.Published.Any<DeliveryAttempted>(m => m.Context.Message.LeaseId == request.LeaseId));
        Assert.True(await f.Harness.Consumed.Any<DeliverMessage>(m => m.Context.Message.LeaseId == request.LeaseId));
        var published = Assert.Single(await PublishedSoFar<DeliveryAttempted>(f, m => m.LeaseId == request.LeaseId));
        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(published.Results).Outcome);
        Assert.True(f.Spool.RecordCalls >= 2);
        Assert.Equal(0, f.Spool.Records);
        Assert.Equal(1, f.Spool.Takes);
        Assert.Single(f.Sink.Messages);
    }

    [Fact]
    public async Task A_database_restart_after_the_end_of_data_is_waited_out_past_the_lease_and_the_result_recorded_once()
    {
        // The database goes down right after the lease is taken: the message is sent, but neither the renewals nor the
        // result write get through, for longer than the 3 s lease. Queue stops the lease clock meanwhile (no scheduler
        // can re-claim it either), so the attempt keeps retrying instead of giving up at the lease's nominal end, and
        // records its result once the database is back, without sending again.
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Delivery:StoreTimeout"] = "00:00:01",
            ["Delivery:LeaseMargin"] = "00:00:00.500",
        });
        f.Route("dest.test", f.Sink);
        f.Spool.OnTaken = _ => f.Spool.Unreachable = true;
        var request = DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test") with { LeaseDuration = TimeSpan.FromSeconds(3) };

        await f.Harness.Bus.Publish(request);
        Assert.Single(await f.Sink.WaitForMessagesAsync(1));

        // Past the lease's nominal end (the last-resort publish comes just before it), the spool is still retried.
        Assert.True(await f.Harness.Published.Any<DeliveryAttempted>(m => m.Context.Message.LeaseId == request.LeaseId));
        var calls = f.Spool.RecordCalls;
        await DeliveryFixture.WaitUntilAsync(() => f.Spool.RecordCalls >= calls + 2);
        Assert.False(f.Spool.IsRecorded(request.LeaseId));

        f.Spool.Unreachable = false;
        var recorded = await f.Spool.RecordedAsync(request.LeaseId).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(recorded.Results).Outcome);
        Assert.Equal(1, f.Spool.Records);
        Assert.Equal(1, f.Spool.Takes);
        Assert.Single(f.Sink.Messages);
    }

    [Fact]
    public async Task A_lease_re_issued_during_a_long_transaction_stops_it_before_the_end_of_data()
    {
        // Renewals every second (a 3 s lease); the destination is slow to answer MAIL FROM, and meanwhile Queue re-issues
        // the lease: the next renewal is refused and the attempt stops before sending the message.
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?> { ["Delivery:LeaseMargin"] = "00:00:00.500" });
        f.Route("dest.test", f.Sink);
        f.Sink.MailReplyDelay = TimeSpan.FromSeconds(10);
        var request = DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test") with { LeaseDuration = TimeSpan.FromSeconds(3) };

        await f.Harness.Bus.Publish(request);
        await DeliveryFixture.WaitUntilAsync(() => f.Spool.Owners.ContainsKey(request.LeaseId));
        f.Spool.Reissued[request.LeaseId] = true;

        // Harness lists are awaited, never enumerated synchronously in a poll: MassTransit's blocking Select can deadlock
        // in its Dispose when the harness's inactivity timer fires at the same moment (seen as a CI hang).
        await DeliveryFixture.WaitUntilAsync(() => f.Spool.Renewals >= 1);
        Assert.True(await f.Harness.Consumed.Any<DeliverMessage>(m => m.Context.Message.LeaseId == request.LeaseId));
        Assert.False(f.Spool.IsRecorded(request.LeaseId));
        Assert.Empty(f.Sink.Messages);
    }

    private static async Task<List<T>> PublishedSoFar<T>(DeliveryFixture f, Func<T, bool> filter)
        where T : class
    {
        // An already-cancelled token makes the harness return what it holds now instead of waiting for more.
        using var now = new CancellationTokenSource();
        await now.CancelAsync();
        var found = new List<T>();
        await foreach (var message in f.Harness.Published.SelectAsync<T>(now.Token))
        {
            if (filter(message.Context.Message))
            {
                found.Add(message.Context.Message);
            }
        }

        return found;
    }
}
