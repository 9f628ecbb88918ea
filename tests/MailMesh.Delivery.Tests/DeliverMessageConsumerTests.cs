using System.Globalization;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Delivery.Tests;

public sealed class DeliverMessageConsumerTests
{
    private static byte[] Message(string body = "Hello.\r\n") =>
        Encoding.ASCII.GetBytes("From: sender@origin.test\r\nTo: rcpt@dest.test\r\nSubject: test\r\n\r\n" + body);

    [Fact]
    public void The_result_write_is_tried_again_at_least_every_second_however_long_the_spool_stays_away()
    {
        // Chaos run: with 5 s steps a result still waited after a 4 s PostgreSQL restart when Queue re-claimed the work
        // of its 10 s lease, and the message went out twice. The first steps stay short (the usual blip), then 1 s.
        Assert.Equal(TimeSpan.FromMilliseconds(200), DeliverMessageConsumer.RecordRetryDelay(1));
        Assert.Equal(TimeSpan.FromMilliseconds(800), DeliverMessageConsumer.RecordRetryDelay(3));
        for (var failures = 1; failures < 100; failures++)
        {
            Assert.InRange(DeliverMessageConsumer.RecordRetryDelay(failures), TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1));
        }
    }

    [Fact]
    public async Task Delivered_bytes_equal_the_stored_bytes()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var content = Encoding.Latin1.GetBytes("Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\ncaf\u00e9 \u00ff\u0080\r\nlast line\r\n");
        var stored = f.Store(content, bodyType: BodyType.EightBitMime);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal(DeliveryOutcome.Delivered, result.Outcome);
        Assert.Equal(250, result.ReplyCode);
        Assert.Equal("2.0.0", result.EnhancedCode);
        Assert.Equal("mx1.dest.test", attempt.RemoteHost);
        Assert.Equal("127.0.0.1", attempt.RemoteAddress);
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.Equal(content, received.Data);
        Assert.Equal(
            Encoding.Latin1.GetBytes("Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\n..\r\ncaf\u00e9 \u00ff\u0080\r\nlast line\r\n"),
            received.RawData);
        Assert.Equal("sender@origin.test", received.MailFrom);
        Assert.Contains($"SIZE={content.Length}", received.MailParameters, StringComparison.Ordinal);
        Assert.Contains("BODY=8BITMIME", received.MailParameters, StringComparison.Ordinal);
        Assert.Equal(["rcpt@dest.test"], received.Recipients);
        Assert.Contains(f.Sink.Commands, c => c.EndsWith("EHLO client.mailmesh.test", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_message_over_the_inline_limit_is_streamed_from_the_spool_and_delivered_byte_exact_with_nothing_left_behind(bool chunking)
    {
        var directory = Path.Combine(Path.GetTempPath(), "mailmesh-tests", Guid.NewGuid().ToString("N"));
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?> { ["Delivery:ContentDirectory"] = directory });
        f.Route("dest.test", f.Sink);
        if (chunking)
        {
            f.Sink.Extensions.Add("CHUNKING");
        }

        // 3 MiB of lines, some of them starting with a dot (dot-stuffed on the wire with DATA, not with BDAT).
        var content = new StringBuilder("Subject: large\r\n\r\n");
        for (var i = 0; content.Length < 3 * 1024 * 1024; i++)
        {
            content.Append(i % 7 == 0 ? ".dot line " : "line ").Append(i).Append(' ', 60).Append("\r\n");
        }

        var bytes = Encoding.ASCII.GetBytes(content.ToString());
        var stored = f.Store(bytes);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Equal(1, f.Spool.ContentCopies);
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.Equal(chunking, received.Chunked);
        Assert.Equal(bytes, received.Data);
        Assert.Contains($"SIZE={bytes.Length}", received.MailParameters, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(directory)); // the local copy was unlinked as soon as it was opened
    }

    [Fact]
    public async Task A_large_message_with_no_room_for_its_copy_is_deferred_with_4_3_1_and_a_small_one_still_goes()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Delivery:MaxContentBytes"] = (2 * 1024 * 1024).ToString(CultureInfo.InvariantCulture),
            ["Delivery:ConnectionSlotTimeout"] = "00:00:00.200",
        });
        f.Route("dest.test", f.Sink);
        var budget = f.Services.GetRequiredService<ContentBudget>();
        using var held = await budget.TryAcquireAsync(2 * 1024 * 1024, TimeSpan.FromSeconds(5), TimeProvider.System, CancellationToken.None);
        var large = f.Store(new byte[StoredMessage.InlineContentLimit + 1]);
        var small = f.Store(Message());

        var deferred = Assert.Single((await f.DeliverAsync(DeliveryFixture.Request(large.Id, "dest.test", "rcpt@dest.test"))).Results);
        var delivered = Assert.Single((await f.DeliverAsync(DeliveryFixture.Request(small.Id, "dest.test", "rcpt@dest.test"))).Results);

        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.3.1"), (deferred.Outcome, deferred.ReplyCode, deferred.EnhancedCode));
        Assert.Equal(0, f.Spool.ContentCopies);
        Assert.Equal(DeliveryOutcome.Delivered, delivered.Outcome);
    }

    [Fact]
    public async Task A_small_message_comes_inline_and_is_not_copied()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Equal(0, f.Spool.ContentCopies);
    }

    [Fact]
    public async Task An_attempt_gives_its_inline_content_buffer_back_whether_it_delivered_or_never_reached_the_content()
    {
        // Issue 8: inline content is read into a rented buffer; a buffer not given back costs a new one per attempt
        // (the large object heap for 100 KB mail), and one given back early would be reused under the send.
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var content = Message();
        var delivered = f.Store(content);
        var unroutable = f.Store(Message());

        var sent = Assert.Single((await f.DeliverAsync(DeliveryFixture.Request(delivered.Id, "dest.test", "rcpt@dest.test"))).Results);
        Assert.Equal(DeliveryOutcome.Delivered, sent.Outcome);
        Assert.Equal(content, Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Data);

        // The result is recorded before the consume ends and gives the buffer back: wait for that, then it must be once.
        await DeliveryFixture.WaitUntilAsync(() => Volatile.Read(ref f.Spool.ContentLeasesGivenBack) >= 1);
        Assert.Equal(1, f.Spool.ContentLeasesGivenBack);

        var failed = Assert.Single((await f.DeliverAsync(DeliveryFixture.Request(unroutable.Id, "nowhere.test", "rcpt@nowhere.test"))).Results);
        Assert.NotEqual(DeliveryOutcome.Delivered, failed.Outcome);
        await DeliveryFixture.WaitUntilAsync(() => Volatile.Read(ref f.Spool.ContentLeasesGivenBack) >= 2);
        Assert.Equal(2, f.Spool.ContentLeasesGivenBack);
    }

    [Fact]
    public async Task A_large_message_whose_content_cannot_be_read_is_deferred_without_sending()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Spool.FailContentCopies = true;
        var stored = f.Store(new byte[StoredMessage.InlineContentLimit + 1]);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.3.0"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.DoesNotContain(f.Sink.Commands, c => c.StartsWith("MAIL", StringComparison.OrdinalIgnoreCase));
    }

    [Theory]
    [InlineData(null, 1)]
    [InlineData("00:00:00", 3)]
    public async Task Delivery_asks_the_Dns_service_once_per_TTL_not_once_per_message(string? maxTtl, int expectedRequests)
    {
        // Issue 8: MX answers are kept inside Delivery for their TTL, so the bus carries ResolveMx only on a miss.
        await using var f = await DeliveryFixture.StartAsync(
            settings: maxTtl is null ? null : new Dictionary<string, string?> { ["Delivery:MxCacheMaxTtl"] = maxTtl });
        f.Route("dest.test", f.Sink);

        for (var i = 0; i < 3; i++)
        {
            var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", $"rcpt{i}@dest.test"));
            Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        }

        Assert.Equal(expectedRequests, (await f.ConsumedAsync<ResolveMx>(expectedRequests)).Count);
        Assert.Equal(3, (await f.Sink.WaitForMessagesAsync(3)).Count);
    }

    [Fact]
    public async Task A_domain_that_does_not_exist_is_remembered_too()
    {
        await using var f = await DeliveryFixture.StartAsync();

        for (var i = 0; i < 2; i++)
        {
            var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Message()).Id, "nowhere.test", "rcpt@nowhere.test"));
            Assert.Equal((DeliveryOutcome.Bounced, "5.1.2"), (Assert.Single(attempt.Results).Outcome, attempt.Results[0].EnhancedCode));
        }

        Assert.Single(await f.ConsumedAsync<ResolveMx>(1));
    }

    [Fact]
    public async Task A_lease_take_whose_answer_was_lost_is_asked_again_as_the_same_owner_and_the_message_is_sent_once()
    {
        // Issue 8 load runs: the take committed but its answer timed out; asked again as a new owner it was refused
        // ("not_taken") and the message waited for the whole lease.
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Spool.LoseTakeAnswers = 1;
        var request = DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test");

        var attempt = await f.DeliverAsync(request);

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Equal(2, f.Spool.Takes);
        Assert.Single(await f.Sink.WaitForMessagesAsync(1));
    }

    [Fact]
    public async Task Each_recipient_gets_its_own_result()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.RecipientReplies["busy@dest.test"] = "450 4.2.1 Mailbox busy";
        f.Sink.RecipientReplies["nobody@dest.test"] = "550 5.1.1 No such user";
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "ok@dest.test", "busy@dest.test", "nobody@dest.test"));

        Assert.Collection(
            attempt.Results,
            r => Assert.Equal((1L, DeliveryOutcome.Delivered, 250, "2.0.0"), (r.RecipientId, r.Outcome, r.ReplyCode, r.EnhancedCode)),
            r => Assert.Equal((2L, DeliveryOutcome.Deferred, 450, "4.2.1"), (r.RecipientId, r.Outcome, r.ReplyCode, r.EnhancedCode)),
            r => Assert.Equal((3L, DeliveryOutcome.Bounced, 550, "5.1.1"), (r.RecipientId, r.Outcome, r.ReplyCode, r.EnhancedCode)));
        Assert.Equal("No such user", attempt.Results[2].ReplyText);
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.Equal(["ok@dest.test"], received.Recipients);
    }

    [Fact]
    public async Task Transient_reply_to_the_data_defers_every_accepted_recipient()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.DataReply = "451 4.3.0 Out of queue space";
        f.Sink.RecipientReplies["nobody@dest.test"] = "550 5.1.1 No such user";
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test", "b@dest.test", "nobody@dest.test"));

        Assert.Equal([DeliveryOutcome.Deferred, DeliveryOutcome.Deferred, DeliveryOutcome.Bounced], attempt.Results.Select(r => r.Outcome));
        Assert.Equal([451, 451, 550], attempt.Results.Select(r => r.ReplyCode));
        Assert.Equal("Out of queue space", attempt.Results[0].ReplyText);
    }

    [Fact]
    public async Task Permanent_reply_to_the_data_bounces_every_accepted_recipient()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.DataReply = "554 5.7.1 Spam";
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test", "b@dest.test"));

        Assert.All(attempt.Results, r => Assert.Equal((DeliveryOutcome.Bounced, 554, "5.7.1"), (r.Outcome, r.ReplyCode, r.EnhancedCode)));
    }

    [Fact]
    public async Task Fails_over_past_a_refused_connection_and_a_421_greeting()
    {
        await using var f = await DeliveryFixture.StartAsync(sinks: 3);
        f.Sinks[1].Greeting = "421 4.3.2 Not accepting mail now";
        // mx1 has an address nobody listens on; mx2 greets 421; mx3 takes the message.
        f.Dns.AddMx("dest.test", 10, "mx1.dest.test").AddAddress("mx1.dest.test", "127.0.0.9")
            .AddMx("dest.test", 20, "mx2.dest.test").AddAddress("mx2.dest.test", f.Sinks[1].Address.ToString())
            .AddMx("dest.test", 30, "mx3.dest.test").AddAddress("mx3.dest.test", f.Sinks[2].Address.ToString());
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Equal("mx3.dest.test", attempt.RemoteHost);
        Assert.Equal(f.Sinks[2].Address.ToString(), attempt.RemoteAddress);
        Assert.Equal(1, f.Sinks[1].ConnectionCount);
        Assert.Empty(f.Sinks[1].Messages);
        Assert.Single(await f.Sinks[2].WaitForMessagesAsync(1));
    }

    [Fact]
    public async Task Transient_MAIL_reply_fails_over_and_defers_when_no_server_is_left()
    {
        await using var f = await DeliveryFixture.StartAsync(sinks: 2);
        f.Sinks[0].MailReply = "451 4.3.0 Try later";
        f.Sinks[1].MailReply = "452 4.3.1 Insufficient storage";
        f.Route("dest.test", f.Sinks[0], f.Sinks[1]);
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 452, "4.3.1"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Contains("mx2.dest.test", result.ReplyText, StringComparison.Ordinal);
        Assert.Equal(1, f.Sinks[0].ConnectionCount);
        Assert.Equal(1, f.Sinks[1].ConnectionCount);
    }

    [Fact]
    public async Task Permanent_MAIL_reply_bounces_everyone_without_failover()
    {
        await using var f = await DeliveryFixture.StartAsync(sinks: 2);
        f.Sinks[0].MailReply = "550 5.7.1 Sender rejected";
        f.Route("dest.test", f.Sinks[0], f.Sinks[1]);
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test", "b@dest.test"));

        Assert.All(attempt.Results, r => Assert.Equal((DeliveryOutcome.Bounced, 550, "5.7.1"), (r.Outcome, r.ReplyCode, r.EnhancedCode)));
        Assert.Equal(0, f.Sinks[1].ConnectionCount);
    }

    [Fact]
    public async Task Null_MX_bounces_with_5_1_10()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Dns.AddNullMx("nomail.test");
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "nomail.test", "a@nomail.test", "b@nomail.test"));

        Assert.All(attempt.Results, r => Assert.Equal((DeliveryOutcome.Bounced, 556, "5.1.10"), (r.Outcome, r.ReplyCode, r.EnhancedCode)));
        Assert.Null(attempt.RemoteHost);
    }

    [Fact]
    public async Task NXDOMAIN_bounces_with_5_1_2()
    {
        await using var f = await DeliveryFixture.StartAsync();
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "missing.test", "a@missing.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Bounced, 550, "5.1.2"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
    }

    [Fact]
    public async Task DNS_SERVFAIL_defers()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Dns.AddMx("broken.test", 10, "mx.broken.test").SetServerFailure("broken.test");
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "broken.test", "a@broken.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.4.3"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
    }

    [Fact]
    public async Task Message_missing_from_the_spool_is_not_attempted_and_records_nothing()
    {
        // A purged message has no recipients left to lease: the lease cannot be taken, so nothing is sent or recorded.
        await using var f = await DeliveryFixture.StartAsync();
        var request = DeliveryFixture.Request(Guid.NewGuid(), "dest.test", "a@dest.test");

        await f.Harness.Bus.Publish(request);

        Assert.True(await f.Harness.Consumed.Any<DeliverMessage>(m => m.Context.Message.LeaseId == request.LeaseId));
        Assert.False(f.Spool.IsRecorded(request.LeaseId));
        Assert.False(await f.Harness.Published.Any<DeliveryAttempted>(m => m.Context.Message.LeaseId == request.LeaseId));
    }

    [Fact]
    public async Task Two_messages_to_one_server_share_one_connection()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var first = f.Store(Message("one\r\n"));
        var second = f.Store(Message("two\r\n"));

        var a = await f.DeliverAsync(DeliveryFixture.Request(first.Id, "dest.test", "rcpt@dest.test"));
        var b = await f.DeliverAsync(DeliveryFixture.Request(second.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(a.Results).Outcome);
        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(b.Results).Outcome);
        var messages = await f.Sink.WaitForMessagesAsync(2);
        Assert.Equal(1, f.Sink.ConnectionCount);
        Assert.Equal(messages[0].ConnectionId, messages[1].ConnectionId);
        Assert.Contains(f.Sink.Commands, c => c.EndsWith(" RSET", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MaxMessagesPerConnection_retires_connections()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?> { ["Delivery:MaxMessagesPerConnection"] = "1" });
        f.Route("dest.test", f.Sink);

        await f.DeliverAsync(DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test"));
        await f.DeliverAsync(DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(2, f.Sink.ConnectionCount);
        Assert.Contains(f.Sink.Commands, c => c.EndsWith(" QUIT", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Sessions_per_destination_never_exceed_the_limit()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?> { ["Delivery:MaxConnectionsPerDestination"] = "2" });
        f.Route("dest.test", f.Sink);
        f.Sink.DataReplyDelay = TimeSpan.FromMilliseconds(150);
        var requests = Enumerable.Range(0, 8).Select(_ => DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test")).ToList();

        await Task.WhenAll(requests.Select(r => f.Harness.Bus.Publish(r)));
        var attempts = await Task.WhenAll(requests.Select(r => f.AttemptedAsync(r.LeaseId)));

        Assert.All(attempts, a => Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(a.Results).Outcome));
        Assert.InRange(f.Sink.MaxConcurrentSessions, 1, 2);
        Assert.InRange(f.Sink.ConnectionCount, 1, 2);
    }

    [Fact]
    public async Task A_batch_of_work_items_is_attempted_item_by_item_each_in_its_own_trace_and_a_held_lease_is_not_sent()
    {
        // Issue 8: Queue sends the jobs of a claim together (DeliverMessages). Each is attempted as if it came alone: its
        // own lease, its own result, its attempt's span in its own message's trace; a job whose lease another consumer
        // holds is not sent, and does not stop the others.
        var attempts = new System.Collections.Concurrent.ConcurrentBag<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == DeliveryMetrics.MeterName,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) =>
                System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.OperationName == "smtp.deliver")
                {
                    attempts.Add(a);
                }
            },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var jobs = Enumerable.Range(0, 4).Select(i => DeliveryFixture.Request(f.Store(Message($"job {i}\r\n")).Id, "dest.test", $"rcpt{i}@dest.test") with
        {
            TraceParent = $"00-{System.Diagnostics.ActivityTraceId.CreateRandom()}-{System.Diagnostics.ActivitySpanId.CreateRandom()}-01",
        }).ToList();
        var held = jobs[3];
        f.Spool.Owners[held.LeaseId] = Guid.NewGuid();

        await f.Harness.Bus.Publish(new DeliverMessages { Jobs = jobs });
        var results = await Task.WhenAll(jobs.Take(3).Select(j => f.AttemptedAsync(j.LeaseId)));

        Assert.All(results, r => Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(r.Results).Outcome));
        Assert.Equal(["rcpt0@dest.test", "rcpt1@dest.test", "rcpt2@dest.test"], (await f.Sink.WaitForMessagesAsync(3)).SelectMany(m => m.Recipients).Order());
        Assert.True(await f.Harness.Consumed.Any<DeliverMessages>());
        Assert.False(f.Spool.IsRecorded(held.LeaseId));
        Assert.Equal(3, f.Sink.Messages.Count);
        foreach (var job in jobs.Take(3))
        {
            await DeliveryFixture.WaitUntilAsync(() => attempts.Any(a => Equals(a.GetTagItem("mailmesh.message.id"), job.MessageId)));
            var attempt = Assert.Single(attempts, a => Equals(a.GetTagItem("mailmesh.message.id"), job.MessageId));
            Assert.Equal(job.TraceParent, $"00-{attempt.TraceId}-{attempt.ParentSpanId}-01");
        }
    }

    [Fact]
    public async Task Batches_make_no_more_attempts_at_once_than_ConcurrentDeliveries()
    {
        // Two consumes, six attempts: the slots are the process's, not each consume's (ConcurrentMessageLimit alone would
        // let each batch run all its jobs at once).
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Delivery:ConcurrentDeliveries"] = "2",
            ["Delivery:MaxConnectionsPerDestination"] = "10",
        });
        f.Route("dest.test", f.Sink);
        f.Sink.DataReplyDelay = TimeSpan.FromMilliseconds(150);
        var jobs = Enumerable.Range(0, 6).Select(_ => DeliveryFixture.Request(f.Store(Message()).Id, "dest.test", "rcpt@dest.test")).ToList();

        await Task.WhenAll(f.Harness.Bus.Publish(new DeliverMessages { Jobs = jobs[..3] }), f.Harness.Bus.Publish(new DeliverMessages { Jobs = jobs[3..] }));
        var results = await Task.WhenAll(jobs.Select(j => f.AttemptedAsync(j.LeaseId)));

        Assert.All(results, r => Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(r.Results).Outcome));
        Assert.Equal(2, f.Sink.MaxConcurrentSessions);
        Assert.InRange(f.Sink.ConnectionCount, 1, 2);
    }

    [Fact]
    public async Task A_batched_item_not_started_when_Delivery_stops_goes_back_not_attempted_and_due_at_once()
    {
        // A one-item consume not yet started goes back to the broker on a graceful stop; an item waiting inside a batch's
        // consume cannot, so it goes back to Queue: not attempted (no attempt counted) and due now, for another replica.
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?> { ["Delivery:ConcurrentDeliveries"] = "1" });
        f.Route("dest.test", f.Sink);
        f.Sink.DataReplyDelay = TimeSpan.FromMilliseconds(500);
        var jobs = Enumerable.Range(0, 3).Select(i => DeliveryFixture.Request(f.Store(Message($"job {i}\r\n")).Id, "dest.test", $"rcpt{i}@dest.test")).ToList();

        await f.Harness.Bus.Publish(new DeliverMessages { Jobs = jobs });
        await DeliveryFixture.WaitUntilAsync(() => f.Spool.Takes >= 1);
        var stoppingAt = DateTimeOffset.UtcNow;
        f.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().StopApplication();
        var results = await Task.WhenAll(jobs.Select(j => f.AttemptedAsync(j.LeaseId)));

        Assert.Single(results, r => r.Results[0].Outcome == DeliveryOutcome.Delivered);
        var handedBack = results.Where(r => r.Results[0].Outcome != DeliveryOutcome.Delivered).Select(r => Assert.Single(r.Results)).ToList();
        Assert.Equal(2, handedBack.Count);
        Assert.All(handedBack, r =>
        {
            Assert.Equal((DeliveryOutcome.Deferred, 451, "4.3.2"), (r.Outcome, r.ReplyCode, r.EnhancedCode));
            Assert.InRange(r.NotAttemptedUntil!.Value, stoppingAt, DateTimeOffset.UtcNow);
        });
        Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.Single(f.Sink.Messages);
    }

    [Fact]
    public async Task Too_many_recipients_go_in_a_further_transaction_on_the_same_connection()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.MaxRecipients = 2;
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test", "e@dest.test"));

        Assert.All(attempt.Results, r => Assert.Equal((DeliveryOutcome.Delivered, "2.0.0"), (r.Outcome, r.EnhancedCode)));
        var messages = await f.Sink.WaitForMessagesAsync(3);
        Assert.Equal([["a@dest.test", "b@dest.test"], ["c@dest.test", "d@dest.test"], ["e@dest.test"]], messages.Select(m => m.Recipients));
        Assert.All(messages, m => Assert.Equal(stored.Content.ToArray(), m.Data));
        Assert.Equal(1, f.Sink.ConnectionCount);
    }

    [Fact]
    public async Task Too_many_recipients_without_pipelining_stops_sending_RCPT_and_continues_later()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.Extensions.Remove("PIPELINING");
        f.Sink.MaxRecipients = 1;
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test", "b@dest.test", "c@dest.test"));

        Assert.Equal([DeliveryOutcome.Delivered, DeliveryOutcome.Delivered, DeliveryOutcome.Delivered], attempt.Results.Select(r => r.Outcome));
        // a (1st transaction), b refused with 452, then b, c refused, then c: one refused RCPT per transaction.
        Assert.Equal(5, f.Sink.Commands.Count(c => c.Contains(" RCPT TO:", StringComparison.Ordinal)));
        Assert.Equal(3, (await f.Sink.WaitForMessagesAsync(3)).Count);
    }

    [Fact]
    public async Task Too_many_recipients_with_nobody_accepted_defers_them()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.RecipientReplies["a@dest.test"] = "452 4.5.3 Too many recipients";
        f.Sink.RecipientReplies["b@dest.test"] = "452 4.5.3 Too many recipients";
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test", "b@dest.test"));

        Assert.All(attempt.Results, r => Assert.Equal((DeliveryOutcome.Deferred, 452, "4.5.3"), (r.Outcome, r.ReplyCode, r.EnhancedCode)));
        Assert.Empty(f.Sink.Messages);
    }

    [Fact]
    public async Task Falls_back_to_HELO_when_EHLO_is_refused()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.EhloReply = "502 5.5.1 Command not implemented";
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Contains(f.Sink.Commands, c => c.EndsWith("HELO client.mailmesh.test", StringComparison.Ordinal));
        Assert.Equal(string.Empty, Assert.Single(f.Sink.Messages).MailParameters);
    }

    [Fact]
    public async Task Connection_lost_after_the_data_defers()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.CloseAfterData = true;
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.4.2"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Contains("end of data", result.ReplyText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Binary_MIME_without_CHUNKING_bounces_with_5_6_3()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var stored = f.Store(Message(), bodyType: BodyType.BinaryMime);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Bounced, 554, "5.6.3"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Empty(f.Sink.Messages);
    }

    [Fact]
    public async Task Binary_MIME_goes_by_BDAT_when_offered()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.Extensions.AddRange(["CHUNKING", "BINARYMIME"]);
        var content = new byte[] { (byte)'S', (byte)':', (byte)' ', 0, 1, 2, (byte)'\n', (byte)'.', (byte)'\r' };
        var stored = f.Store(content, bodyType: BodyType.BinaryMime);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.True(received.Chunked);
        Assert.Equal(content, received.Data);
        Assert.Contains("BODY=BINARYMIME", received.MailParameters, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Message_over_the_servers_SIZE_bounces_without_sending()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.Extensions.Remove("SIZE 10485760");
        f.Sink.Extensions.Add("SIZE 10");
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Bounced, 552, "5.3.4"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
    }

    [Fact]
    public async Task Address_literal_skips_DNS()
    {
        await using var f = await DeliveryFixture.StartAsync();
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "[127.0.0.1]", "rcpt@[127.0.0.1]"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Equal(0, f.Dns.TotalQueries);
    }
}
