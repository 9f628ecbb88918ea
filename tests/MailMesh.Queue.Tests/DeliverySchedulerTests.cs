using MailMesh.Contracts;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Queue.Tests;

public sealed class DeliverySchedulerTests
{
    [Fact]
    public async Task Scheduler_claims_due_work_and_publishes_DeliverMessage()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(recipients:
        [
            new NewRecipient { Address = "a@dest.example", Notify = "SUCCESS,FAILURE", OriginalRecipient = "rfc822;a@dest.example" },
            new NewRecipient { Address = "b@dest.example" },
            new NewRecipient { Address = "c@other.example" },
        ]);

        await using var scheduler = await StartSchedulerAsync(host);

        var dest = await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == id && m.Domain == "dest.example");
        Assert.Equal(["a@dest.example", "b@dest.example"], dest.Recipients.Select(r => r.Address).Order());
        Assert.All(dest.Recipients, r => Assert.Equal(1, r.Attempt));
        Assert.Equal("SUCCESS,FAILURE", dest.Recipients.Single(r => r.Address == "a@dest.example").Notify);
        Assert.Equal(host.Time.GetUtcNow() + host.Options.LeaseDuration, dest.LeaseExpiresAt);
        await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == id && m.Domain == "other.example");
    }

    [Fact]
    public async Task The_jobs_of_one_claim_go_to_Delivery_in_batches_of_at_most_DispatchBatchSize()
    {
        // Issue 8: one bus message per job was the broker's largest cost per mail. Five jobs in batches of at most two:
        // 2 + 2 + 1, the one alone as a plain DeliverMessage; every job once, each under its own lease.
        var dispatches = new System.Collections.Concurrent.ConcurrentDictionary<Guid, (string Id, string? Parent)>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == ServiceDefaults.Telemetry.Prefix + ".Queue",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) =>
                System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.OperationName == "queue.dispatch" && a.GetTagItem("mailmesh.message.id") is Guid id)
                {
                    dispatches[id] = (a.Id!, a.ParentId);
                }
            },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        await using var host = await QueueTestHost.StartAsync(o => o.DispatchBatchSize = 2);
        var ids = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await host.StoreAsync());
        }

        await using var scheduler = await StartSchedulerAsync(host);
        foreach (var id in ids)
        {
            await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == id);
        }

        var batches = host.Probe.Published<DeliverMessages>();
        Assert.Equal([2, 2], batches.Select(b => b.Jobs.Count));
        var work = host.Probe.Published<DeliverMessage>();
        Assert.Equal(ids.Order(), work.Select(w => w.MessageId).Order());
        Assert.Equal(5, work.Select(w => w.LeaseId).Distinct().Count());
        Assert.All(work, w => Assert.Equal(host.Options.LeaseDuration, w.LeaseDuration));

        // Each job carries its own dispatch span, in its message's trace, for Delivery to continue (the spans end once
        // their batch is published). These messages were stored without a trace context: each dispatch is a root of its
        // own, not a child of the job dispatched before it in the batch.
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
        {
            while (dispatches.Count < ids.Count)
            {
                await Task.Delay(10, timeout.Token);
            }
        }

        Assert.All(batches.SelectMany(b => b.Jobs), w => Assert.Equal(dispatches[w.MessageId].Id, w.TraceParent));
        Assert.All(ids, id => Assert.Null(dispatches[id].Parent));
    }

    [Theory]
    [InlineData(0, 8, new int[0])]
    [InlineData(1, 8, new[] { 1 })]
    [InlineData(8, 8, new[] { 8 })]
    [InlineData(9, 8, new[] { 4, 5 })]
    [InlineData(17, 8, new[] { 5, 6, 6 })]
    [InlineData(64, 8, new[] { 8, 8, 8, 8, 8, 8, 8, 8 })]
    [InlineData(3, 1, new[] { 1, 1, 1 })]
    public void A_claim_is_split_into_the_fewest_batches_of_nearly_equal_size(int jobs, int maxBatch, int[] sizes)
    {
        var claimed = Enumerable.Range(0, jobs).Select(i => new DeliveryJob
        {
            MessageId = Guid.NewGuid(),
            Domain = "dest.example",
            LeaseId = Guid.NewGuid(),
            LeaseExpiresAt = DateTimeOffset.UnixEpoch,
            ReceivedAt = DateTimeOffset.UnixEpoch,
            Recipients = [],
        }).ToList();

        var batches = DeliveryScheduler.Batches(claimed, maxBatch).ToList();

        Assert.Equal(sizes, batches.Select(b => b.Count));
        Assert.Equal(claimed, batches.SelectMany(b => b)); // every job once, in claim order
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_announcement_pokes_the_scheduler_before_the_poll_interval(bool batch)
    {
        // The fake clock moves only past ClaimInterval (a quiet spell since the first round), never to the poll interval,
        // so only the poke can wake the scheduler. Ingress announces in batches (MessagesReceived); a single
        // MessageReceived comes from a new DSN or an older Ingress.
        await using var host = await QueueTestHost.StartAsync();
        var first = await host.StoreAsync();
        await using var scheduler = await StartSchedulerAsync(host);
        await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == first);
        host.Time.Advance(host.Options.ClaimInterval);

        var second = await host.StoreAsync();
        var received = new MessageReceived
        {
            MessageId = second,
            Sender = QueueTestHost.Sender,
            RecipientCount = 1,
            Size = 100,
            ReceivedAt = host.Time.GetUtcNow(),
        };
        await (batch ? host.Harness.Bus.Publish(new MessagesReceived { Messages = [received] }) : host.Harness.Bus.Publish(received));

        await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == second);
    }

    [Fact]
    public async Task Lost_work_is_redriven_when_its_lease_expires()
    {
        await using var host = await QueueTestHost.StartAsync(o => o.LeaseDuration = TimeSpan.FromSeconds(30));
        var id = await host.StoreAsync();
        await using var scheduler = await StartSchedulerAsync(host);
        var first = await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == id);

        // Delivery never answers (the work item was lost). Once the lease has expired, the next poll claims it again.
        // The clock moves a poll interval at a time and each step waits for the round it triggers, as a running
        // scheduler polls: one jump over the whole lease would be a gap in the lease clock's heartbeats (no scheduler
        // reached the store), which stops the lease clock for that long. The poke only ends the scheduler's current
        // wait deterministically; what it then claims is decided by the expired lease alone.
        var monitor = host.Provider.GetRequiredService<QueueLoopMonitor>();
        var again = host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == id && m.LeaseId != first.LeaseId);
        var rounds = 0;
        while (!again.IsCompleted && rounds++ < 40)
        {
            host.Time.Advance(host.Options.PollInterval);
            host.Provider.GetRequiredService<SchedulerSignal>().Poke();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while (monitor.Age(DeliveryScheduler.LoopName) != TimeSpan.Zero)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(2), timeout.Token);
            }
        }

        Assert.InRange(rounds, 30, 32);
        Assert.Equal(2, (await again).Recipients[0].Attempt);
    }

    [Fact]
    public async Task Completed_messages_are_purged_after_PurgeCompletedAfter()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();
        var job = await host.ClaimAsync(id);
        await host.Spool.CompleteAttemptAsync(id, job.LeaseId,
            [new RecipientUpdate { RecipientId = job.Recipients[0].RecipientId, State = RecipientState.Delivered, AttemptedAt = host.Time.GetUtcNow(), ReplyCode = 250 }],
            default);

        var purger = ActivatorUtilities.CreateInstance<CompletedMessagePurger>(host.Provider);
        Assert.Equal(0, await purger.PurgeOnceAsync(default));
        host.Time.Advance(host.Options.PurgeCompletedAfter + TimeSpan.FromMinutes(1));
        Assert.Equal(1, await purger.PurgeOnceAsync(default));
        Assert.Null(await host.Spool.GetStatusAsync(id, default));
    }

    [Fact]
    public async Task Message_status_endpoint_answers_400_404_and_the_status()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();

        var malformed = await QueueEndpoints.GetMessageAsync("not-a-uuid", host.Spool, default);
        Assert.Equal(StatusCodes.Status400BadRequest, Assert.IsType<ProblemHttpResult>(malformed.Result).StatusCode);

        var unknown = await QueueEndpoints.GetMessageAsync(Guid.NewGuid().ToString(), host.Spool, default);
        var problem = Assert.IsType<ProblemHttpResult>(unknown.Result);
        Assert.Equal(StatusCodes.Status404NotFound, problem.StatusCode);
        Assert.Contains("purged", problem.ProblemDetails.Detail, StringComparison.Ordinal);

        var known = await QueueEndpoints.GetMessageAsync(id.ToString(), host.Spool, default);
        var status = Assert.IsType<JsonHttpResult<MessageStatus>>(known.Result).Value;
        Assert.Equal(id, status!.Id);
        Assert.Equal(RecipientState.Queued, Assert.Single(status.Recipients).State);

        var depth = await QueueEndpoints.GetQueueAsync(host.Spool, default);
        Assert.Equal(1, depth.Value!.Recipients["queued"]);
        Assert.Equal(1, depth.Value.Total);
    }

    private static async Task<RunningScheduler> StartSchedulerAsync(QueueTestHost host)
    {
        var scheduler = host.Provider.GetRequiredService<DeliveryScheduler>();
        await scheduler.StartAsync(CancellationToken.None);
        return new RunningScheduler(scheduler);
    }

    private sealed class RunningScheduler(DeliveryScheduler scheduler) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await scheduler.StopAsync(CancellationToken.None);
    }
}
