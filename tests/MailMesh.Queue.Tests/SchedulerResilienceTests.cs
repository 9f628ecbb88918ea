using System.Reflection;
using MailMesh.Contracts;
using MailMesh.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MailMesh.Queue.Tests;

/// <summary>
/// The scheduler can never stop (issue 7 §4): a failing round is retried with back-off, a hung await times out, a
/// scheduler that completes no round fails readiness, and work older than MaxAge expires at claim time. Time is the
/// fake clock; the tests advance it in steps until the awaited event happens (bounded by a real-time timeout).
/// </summary>
public sealed class SchedulerResilienceTests
{
    [Fact]
    public async Task A_failing_store_round_is_retried_with_back_off_and_the_scheduler_resumes()
    {
        var faults = new SpoolFaults { FailClaims = 3 };
        await using var host = await QueueTestHost.StartAsync(wrapSpool: faults.Wrap);
        var id = await host.StoreAsync();

        await using var scheduler = await StartSchedulerAsync(host);
        var published = host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == id);
        await AdvanceUntilAsync(host, published);

        // Three failed rounds, then the one that claimed and published. The clock keeps moving until the test sees the
        // publish, so on a busy machine more (empty) rounds may have run by then.
        Assert.Equal(0, faults.FailClaims);
        Assert.True(faults.Claims >= 4, $"{faults.Claims} claims");
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(host)).Status);
    }

    [Fact]
    public async Task A_hung_claim_times_out_and_the_next_round_claims()
    {
        // The first claim never answers and ignores its token (a connection stuck on a dead server).
        var faults = new SpoolFaults { HangClaims = 1 };
        await using var host = await QueueTestHost.StartAsync(o => o.StoreTimeout = TimeSpan.FromSeconds(5), faults.Wrap);
        var id = await host.StoreAsync();

        await using var scheduler = await StartSchedulerAsync(host);
        var published = host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == id);
        await AdvanceUntilAsync(host, published);

        // The hung claim, then the one that claimed and published; as above, the clock keeps moving until the test sees
        // the publish, so on a busy machine more (empty) rounds may have run by then.
        Assert.Equal(0, faults.HangClaims);
        Assert.True(faults.Claims >= 2, $"{faults.Claims} claims");
    }

    [Fact]
    public async Task Readiness_fails_while_rounds_stall_and_recovers_when_they_complete()
    {
        var faults = new SpoolFaults { FailClaims = int.MaxValue };
        await using var host = await QueueTestHost.StartAsync(wrapSpool: faults.Wrap);
        await using var scheduler = await StartSchedulerAsync(host);
        var monitor = host.Provider.GetRequiredService<QueueLoopMonitor>();
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(host)).Status);

        // No round completes: once StalledAfter has passed, /readyz fails and the age keeps growing.
        var stalled = Task.Run(async () =>
        {
            while ((await CheckAsync(host)).Status == HealthStatus.Healthy)
            {
                await Task.Yield();
            }
        });
        await AdvanceUntilAsync(host, stalled);
        Assert.True(monitor.Age(DeliveryScheduler.LoopName) > host.Options.StalledAfter);
        Assert.Contains("claim", (await CheckAsync(host)).Description, StringComparison.Ordinal);

        // The database comes back: the next round completes and readiness recovers.
        faults.FailClaims = 0;
        var healthy = Task.Run(async () =>
        {
            while ((await CheckAsync(host)).Status != HealthStatus.Healthy)
            {
                await Task.Yield();
            }
        });
        await AdvanceUntilAsync(host, healthy);
        Assert.True(monitor.Age(DeliveryScheduler.LoopName) < host.Options.StalledAfter);
    }

    [Fact]
    public async Task Work_older_than_MaxAge_expires_at_claim_and_bounces_instead_of_being_dispatched()
    {
        // The message's attempts kept getting lost: it is still Queued (or its lease expired) when MaxAge passes.
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync();
        host.Time.Advance(host.Options.MaxAge + TimeSpan.FromMinutes(1));

        var scheduler = host.Provider.GetRequiredService<DeliveryScheduler>();
        Assert.Equal(1, await scheduler.RunOnceAsync(default));

        // The result applier turns the expiry into an Expired recipient and a failure DSN to the sender.
        await host.Probe.WaitPublishedAsync<MessageEvent>(e => e.MessageId == id && e.Type == MessageEventType.DsnQueued);
        var status = await host.Spool.GetStatusAsync(id, default);
        var recipient = Assert.Single(status!.Recipients);
        Assert.Equal(RecipientState.Expired, recipient.State);
        Assert.Equal("4.4.7", recipient.LastEnhancedCode);
        Assert.Equal(1, (await host.Spool.CountByStateAsync(default))[RecipientState.Queued]); // the DSN to the sender
        Assert.DoesNotContain(host.Probe.Published<DeliverMessage>(), m => m.MessageId == id);
    }

    [Fact]
    public async Task The_scheduler_claims_no_more_than_the_in_flight_window()
    {
        await using var host = await QueueTestHost.StartAsync(o =>
        {
            o.MaxJobsInFlight = 3;
            o.MaxJobsInFlightPerDomain = 2;
        });
        for (var i = 0; i < 4; i++)
        {
            await host.StoreAsync(recipients: [new NewRecipient { Address = $"r{i}@busy.example" }]);
        }

        await host.StoreAsync(recipients: [new NewRecipient { Address = "r@quiet.example" }]);

        var scheduler = host.Provider.GetRequiredService<DeliveryScheduler>();
        Assert.Equal(3, await scheduler.RunOnceAsync(default));
        Assert.Equal(0, await scheduler.RunOnceAsync(default));
        var published = host.Probe.Published<DeliverMessage>();
        Assert.Equal(2, published.Count(m => m.Domain == "busy.example"));
        Assert.Single(published, m => m.Domain == "quiet.example");
        Assert.All(published, m => Assert.Equal(host.Options.LeaseDuration, m.LeaseDuration));
    }

    [Fact]
    public async Task A_full_window_refills_as_soon_as_a_result_is_applied_not_at_the_next_poll()
    {
        // Issue 8: with a full in-flight window, the applier that frees a slot wakes the scheduler. The fake clock moves
        // only past ClaimInterval, never to the poll interval, so a scheduler that waited for its poll interval would
        // never dispatch the second message.
        await using var host = await QueueTestHost.StartAsync(o => o.MaxJobsInFlight = 1);
        var first = await host.StoreAsync();
        var second = await host.StoreAsync();
        var firstPublished = host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == first || m.MessageId == second);
        await using var scheduler = await StartSchedulerAsync(host);
        var job = await firstPublished;
        var other = job.MessageId == first ? second : first;
        var otherPublished = host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == other);
        Assert.False(otherPublished.IsCompleted);
        host.Time.Advance(host.Options.ClaimInterval);

        var applied = host.WaitAppliedAsync(job.LeaseId);
        await host.Harness.Bus.Publish(Delivered(
            job.MessageId, job.Domain, job.LeaseId, job.Recipients.Select(r => (r.RecipientId, r.Address)), host.Time.GetUtcNow()));
        await applied;

        await otherPublished.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Pokes_that_come_within_the_claim_interval_are_served_by_one_round_when_it_has_passed()
    {
        // Issue 8: at 740 mails a second every announcement and every applied result poked the scheduler, and each poke
        // cost a claim statement, most of them finding the destination's window full. Pokes that come within
        // ClaimInterval of the last round's start now wait for it and share one round.
        var faults = new SpoolFaults();
        var (host, scheduler) = await AfterFirstRoundAsync(faults);
        await using var hostScope = host;
        await using var schedulerScope = scheduler;
        var claims = faults.Claims;

        var second = await host.StoreAsync();
        var third = await host.StoreAsync();
        var signal = host.Provider.GetRequiredService<SchedulerSignal>();
        signal.Poke();
        var secondPublished = host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == second);
        var thirdPublished = host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == third);
        signal.Poke();

        // The fake clock has not moved since the first round: the poked round waits for it, and a poke meanwhile joins it.
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        signal.Poke();
        await Task.Delay(TimeSpan.FromMilliseconds(100));
        Assert.Equal(claims, faults.Claims);
        Assert.False(secondPublished.IsCompleted);

        host.Time.Advance(host.Options.ClaimInterval);
        await Task.WhenAll(secondPublished, thirdPublished).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(claims + 1, faults.Claims);
    }

    [Fact]
    public async Task A_poke_that_comes_during_a_round_brings_another_round_after_the_claim_interval()
    {
        // The poke must not be forgotten with the round it came during: the work it announces was not in that claim.
        var faults = new SpoolFaults();
        await using var host = await QueueTestHost.StartAsync(wrapSpool: faults.Wrap);
        var signal = host.Provider.GetRequiredService<SchedulerSignal>();
        faults.DuringClaim = signal.Poke;
        var first = await host.StoreAsync();
        await using var scheduler = await StartSchedulerAsync(host);
        await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == first);
        faults.DuringClaim = null;

        // Stored after that round, announced by nothing else: only the poke from during the round brings it, and the
        // clock moves by ClaimInterval only, never to the poll interval.
        var second = await host.StoreAsync();
        host.Time.Advance(host.Options.ClaimInterval);

        await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == second).WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_poked_round_more_than_half_a_poll_interval_after_the_last_heartbeat_beats_again()
    {
        // Beats skipped for up to a whole PollInterval: a poked round at 0.6 s skipped it, the next beat came with the
        // poll at 1.6 s plus the round's time, and the default LeaseClockGap (2 s) could see a gap that was not there.
        var faults = new SpoolFaults();
        var (host, scheduler) = await AfterFirstRoundAsync(faults);
        await using var hostScope = host;
        await using var schedulerScope = scheduler;
        Assert.Equal(1, faults.Beats);

        var second = await host.StoreAsync();
        host.Time.Advance(host.Options.PollInterval * 0.6);
        host.Provider.GetRequiredService<SchedulerSignal>().Poke();
        await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == second).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, faults.Beats);
    }

    [Fact]
    public async Task The_round_after_a_full_batch_claims_at_once()
    {
        // A full batch means more is due: no waiting for ClaimInterval (the fake clock never moves here).
        await using var host = await QueueTestHost.StartAsync(o => o.ClaimBatchSize = 1);
        var first = await host.StoreAsync();
        var second = await host.StoreAsync();
        await using var scheduler = await StartSchedulerAsync(host);

        await Task.WhenAll(
            host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == first),
            host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == second)).WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task While_results_keep_arriving_the_applier_looks_again_after_the_busy_interval()
    {
        // Delivery records results from its own process, which cannot poke Queue's applier: after a round that found
        // work, the applier looks again after BusyPollInterval instead of the full PollInterval.
        await using var host = await QueueTestHost.StartAsync(o =>
        {
            o.PollInterval = TimeSpan.FromSeconds(30);
            o.LeaseClockGap = TimeSpan.FromMinutes(1);
        });
        var first = await host.ClaimAsync(await host.StoreAsync());
        var second = await host.ClaimAsync(await host.StoreAsync());

        var firstApplied = host.WaitAppliedAsync(first.LeaseId);
        await host.Harness.Bus.Publish(Delivered(first, host.Time.GetUtcNow()));
        await firstApplied;

        var secondApplied = host.WaitAppliedAsync(second.LeaseId);
        await host.Spool.RecordResultAsync(ResultPayload.ToPending(Delivered(second, host.Time.GetUtcNow())), host.Time.GetUtcNow(), CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!secondApplied.IsCompleted)
        {
            host.Time.Advance(host.Options.BusyPollInterval);
            await Task.WhenAny(secondApplied, Task.Delay(TimeSpan.FromMilliseconds(20), timeout.Token));
        }

        await secondApplied;
        Assert.True(host.Time.GetUtcNow() - first.LeaseExpiresAt + host.Options.LeaseDuration < host.Options.PollInterval);
    }

    [Fact]
    public async Task A_result_recorded_while_the_applier_backs_off_from_a_failed_round_is_applied_at_once()
    {
        // CI flake (DeliveryAttemptedConsumerTests): a test moved the fake clock days ahead while the applier's first
        // claim was in flight, its StoreTimeout fired, and the applier waited out its back-off on a clock that never
        // moved again. A result this process records proves the store answers: it ends the back-off. The clock never
        // moves here.
        var faults = new SpoolFaults { FailResultClaims = 1 };
        await using var host = await QueueTestHost.StartAsync(wrapSpool: faults.Wrap);
        var job = await host.ClaimAsync(await host.StoreAsync());
        using (var failed = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            while (faults.ResultClaims < 1)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(5), failed.Token);
            }
        }

        var applied = host.WaitAppliedAsync(job.LeaseId);
        await host.Harness.Bus.Publish(Delivered(job, host.Time.GetUtcNow()));
        await applied;
        Assert.Equal(2, faults.ResultClaims);
    }

    [Fact]
    public async Task Recorded_results_are_applied_in_one_commit_per_batch_and_their_events_go_out_in_one_bus_message()
    {
        // Issue 8: "one to complete many", "results and events in batches". Ten results recorded while the applier waits
        // are applied by one round, and their ten events are published together, each with an id of its own.
        var faults = new SpoolFaults();
        await using var host = await QueueTestHost.StartAsync(wrapSpool: faults.Wrap);
        var jobs = new List<DeliveryJob>();
        for (var i = 0; i < 10; i++)
        {
            jobs.Add(await host.ClaimAsync(await host.StoreAsync()));
        }

        var applier = await RecordWithTheApplierStoppedAsync(host, jobs);

        Assert.Equal(10, await applier.RunOnceAsync(CancellationToken.None));

        Assert.Equal(1, faults.CompleteBatches);
        Assert.Equal(0, faults.SingleCompletions);
        foreach (var job in jobs)
        {
            Assert.Equal(RecipientState.Delivered, Assert.Single((await host.Spool.GetStatusAsync(job.MessageId, default))!.Recipients).State);
        }

        Assert.Empty(await host.Spool.ClaimResultsAsync(host.Time.GetUtcNow() + TimeSpan.FromDays(1), 100, host.Options.ResultRetryDelay, CancellationToken.None));
        var batch = Assert.Single(host.Probe.Published<MessageEvents>());
        Assert.Equal(jobs.Select(j => j.MessageId).Order(), batch.Events.Select(e => e.MessageId).Order());
        Assert.All(batch.Events, e => Assert.Equal(MessageEventType.Delivered, e.Type));
        Assert.Equal(10, batch.Events.Select(e => e.EventId).Distinct().Count(id => id is not null));
    }

    [Fact]
    public async Task The_events_of_a_batch_go_out_even_when_it_is_stopped_after_its_commit()
    {
        // Events travel in one bus message per batch, published after the batch's other steps. A batch stopped after its
        // commit (its time limit, a shutdown) while a DSN step hangs must still announce what it committed: applying the
        // result again makes no events for updates that are already applied.
        var faults = new SpoolFaults();
        await using var host = await QueueTestHost.StartAsync(wrapSpool: faults.Wrap);
        var job = await host.ClaimAsync(await host.StoreAsync());
        await host.Provider.GetRequiredService<ResultApplier>().StopAsync(CancellationToken.None);
        var delivered = Delivered(job, host.Time.GetUtcNow());
        var bounced = delivered with
        {
            Results = [.. delivered.Results.Select(r => r with { Outcome = DeliveryOutcome.Bounced, ReplyCode = 550, EnhancedCode = "5.1.1", ReplyText = "no such user", Stage = ReplyStage.Rcpt })],
        };
        faults.HangMessageReads = true; // the bounce's DSN reads the original message: no answer until the batch is stopped

        using var stop = new CancellationTokenSource();
        await using var scope = host.Provider.CreateAsyncScope();
        var applying = scope.ServiceProvider.GetRequiredService<DeliveryAttemptedConsumer>().ApplyAllAsync([new ResultToApply(bounced, null)], stop.Token);
        await faults.MessageReadStarted.Task.WaitAsync(TimeSpan.FromSeconds(15));
        await stop.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => applying);
        Assert.Equal(RecipientState.Bounced, Assert.Single((await host.Spool.GetStatusAsync(job.MessageId, default))!.Recipients).State);
        var events = Assert.Single(host.Probe.Published<MessageEvents>());
        Assert.Equal([(job.MessageId, MessageEventType.Bounced)], events.Events.Select(e => (e.MessageId, e.Type)));
    }

    [Fact]
    public async Task A_batch_whose_commit_fails_is_applied_one_by_one()
    {
        var faults = new SpoolFaults { FailCompleteBatches = 1 };
        await using var host = await QueueTestHost.StartAsync(wrapSpool: faults.Wrap);
        var first = await host.ClaimAsync(await host.StoreAsync());
        var second = await host.ClaimAsync(await host.StoreAsync());
        var applier = await RecordWithTheApplierStoppedAsync(host, [first, second]);

        Assert.Equal(2, await applier.RunOnceAsync(CancellationToken.None));

        Assert.Equal(3, faults.CompleteBatches); // the failed batch, then one per result
        foreach (var job in new[] { first, second })
        {
            Assert.Equal(RecipientState.Delivered, Assert.Single((await host.Spool.GetStatusAsync(job.MessageId, default))!.Recipients).State);
        }

        Assert.Empty(await host.Spool.ClaimResultsAsync(host.Time.GetUtcNow() + TimeSpan.FromDays(1), 100, host.Options.ResultRetryDelay, CancellationToken.None));
    }

    /// <summary>Stops the host's result applier, then records a delivered result for each job: one round applies them all.</summary>
    private static async Task<ResultApplier> RecordWithTheApplierStoppedAsync(QueueTestHost host, IEnumerable<DeliveryJob> jobs)
    {
        var applier = host.Provider.GetRequiredService<ResultApplier>();
        await applier.StopAsync(CancellationToken.None);
        foreach (var job in jobs)
        {
            var now = host.Time.GetUtcNow();
            Assert.True(await host.Spool.RecordResultAsync(ResultPayload.ToPending(Delivered(job, now)), now, CancellationToken.None));
        }

        return applier;
    }

    private static DeliveryAttempted Delivered(DeliveryJob job, DateTimeOffset now) =>
        Delivered(job.MessageId, job.Domain, job.LeaseId, job.Recipients.Select(r => (r.RecipientId, r.Address)), now);

    private static DeliveryAttempted Delivered(
        Guid messageId, string domain, Guid leaseId, IEnumerable<(long Id, string Address)> recipients, DateTimeOffset now) => new()
        {
            MessageId = messageId,
            Domain = domain,
            LeaseId = leaseId,
            RemoteHost = "mx.dest.example",
            RemoteAddress = "192.0.2.25",
            StartedAt = now,
            CompletedAt = now,
            Results = [.. recipients.Select(r => new RecipientResult
        {
            RecipientId = r.Id,
            Address = r.Address,
            Outcome = DeliveryOutcome.Delivered,
            ReplyCode = 250,
            EnhancedCode = "2.0.0",
            ReplyText = "ok",
            Stage = ReplyStage.Data,
        })],
        };

    [Fact]
    public async Task After_a_store_outage_longer_than_the_lease_the_leases_are_extended_once_before_any_claim()
    {
        // Two replicas; Delivery took both leases (30 s) and sent both messages, then the database went down for a
        // minute. The holder of "held" is still retrying its result; the holder of "dead" was killed meanwhile.
        var faults = new SpoolFaults();
        await using var host = await QueueTestHost.StartAsync(o => o.LeaseDuration = TimeSpan.FromSeconds(30), faults.Wrap);
        var held = await host.StoreAsync();
        var dead = await host.StoreAsync();
        var replicaA = host.Provider.GetRequiredService<DeliveryScheduler>();
        var replicaB = ActivatorUtilities.CreateInstance<DeliveryScheduler>(host.Provider);
        Assert.Equal(2, await replicaA.RunOnceAsync(default));
        Assert.Equal(0, await replicaB.RunOnceAsync(default));
        var work = host.Probe.Published<DeliverMessage>().ToDictionary(m => m.MessageId);

        host.Time.Advance(TimeSpan.FromSeconds(1));
        faults.Unreachable = true;
        for (var i = 0; i < 6; i++)
        {
            host.Time.Advance(TimeSpan.FromSeconds(10));
            await Assert.ThrowsAsync<InvalidOperationException>(() => replicaA.RunOnceAsync(default));
            await Assert.ThrowsAsync<InvalidOperationException>(() => replicaB.RunOnceAsync(default));
        }

        // Back, 61 s after the last heartbeat: both replicas' first rounds claim nothing (the leases, which ran out
        // 31 s ago by the wall clock, were extended by the outage, once).
        faults.Unreachable = false;
        Assert.Equal(0, await replicaA.RunOnceAsync(default));
        Assert.Equal(0, await replicaB.RunOnceAsync(default));
        Assert.Equal(2, host.Probe.Published<DeliverMessage>().Count);

        // The live holder records its result under its lease, past the lease's nominal end.
        var heldWork = work[held];
        var now = host.Time.GetUtcNow();
        Assert.True(await host.Spool.RecordResultAsync(
            ResultPayload.ToPending(Delivered(held, heldWork.Domain, heldWork.LeaseId, heldWork.Recipients.Select(r => (r.RecipientId, r.Address)), now)), now, default));

        // The dead holder's lease still runs out, 30 s after the outage (what it had left at the last heartbeat before
        // it), and only then is its message sent again.
        var step = 0;
        while (step < 40 && !host.Probe.Published<DeliverMessage>().Any(m => m.MessageId == dead && m.LeaseId != work[dead].LeaseId))
        {
            step++;
            host.Time.Advance(TimeSpan.FromSeconds(1));
            await replicaA.RunOnceAsync(default);
            await replicaB.RunOnceAsync(default);
        }

        Assert.Equal(30, step);
        Assert.DoesNotContain(host.Probe.Published<DeliverMessage>(), m => m.MessageId == held && m.LeaseId != heldWork.LeaseId);
    }

    private static Task<HealthCheckResult> CheckAsync(QueueTestHost host) =>
        host.Provider.GetRequiredService<QueueLoopMonitor>().CheckHealthAsync(new HealthCheckContext());

    /// <summary>
    /// Moves the fake clock a poll interval at a time until <paramref name="awaited"/> completes: the scheduler's
    /// waits (back-off, poll, timeouts) are on that clock. Fails after 30 s of real time.
    /// </summary>
    private static async Task AdvanceUntilAsync(QueueTestHost host, Task awaited)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!awaited.IsCompleted)
        {
            timeout.Token.ThrowIfCancellationRequested();
            host.Time.Advance(host.Options.PollInterval);
            await Task.WhenAny(awaited, Task.Delay(TimeSpan.FromMilliseconds(5), timeout.Token));
        }

        await awaited;
    }

    /// <summary>A host whose spool <paramref name="faults"/> counts calls, and its scheduler, after the first round
    /// dispatched the one message stored before it (the fake clock has not moved since).</summary>
    private static async Task<(QueueTestHost Host, RunningScheduler Scheduler)> AfterFirstRoundAsync(SpoolFaults faults)
    {
        var host = await QueueTestHost.StartAsync(wrapSpool: faults.Wrap);
        RunningScheduler? scheduler = null;
        try
        {
            var first = await host.StoreAsync();
            scheduler = await StartSchedulerAsync(host);
            await host.Probe.WaitPublishedAsync<DeliverMessage>(m => m.MessageId == first);
            return (host, scheduler);
        }
        catch
        {
            if (scheduler is not null)
            {
                await scheduler.DisposeAsync();
            }

            await host.DisposeAsync();
            throw;
        }
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

/// <summary>Faults for the windowed claim of a real spool: throw like a refusing database, or never answer.</summary>
internal sealed class SpoolFaults
{
    private int _claims;

    private int _resultClaims;

    public volatile int FailClaims;
    public volatile int FailResultClaims;
    public volatile int FailCompleteBatches;
    private int _completeBatches;
    private int _singleCompletions;

    /// <summary>Calls of <see cref="ISpool.CompleteAttemptsAsync"/> (a batch of any size, failed ones included).</summary>
    public int CompleteBatches => Volatile.Read(ref _completeBatches);

    /// <summary>Calls of <see cref="ISpool.CompleteAttemptAsync"/>.</summary>
    public int SingleCompletions => Volatile.Read(ref _singleCompletions);
    public volatile int HangClaims;

    /// <summary>While set, <see cref="ISpool.GetMessageAsync"/> answers only by being cancelled.</summary>
    public volatile bool HangMessageReads;

    /// <summary>Set when a hung <see cref="ISpool.GetMessageAsync"/> began.</summary>
    public TaskCompletionSource MessageReadStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>While set, the heartbeat and the claim fail as they do while the database restarts.</summary>
    public volatile bool Unreachable;

    public int Claims => Volatile.Read(ref _claims);

    private int _beats;

    /// <summary>Calls of <see cref="ISpool.BeatLeaseClockAsync"/>.</summary>
    public int Beats => Volatile.Read(ref _beats);

    internal void OnBeat() => Interlocked.Increment(ref _beats);

    /// <summary>Runs inside each windowed claim, before the spool is asked.</summary>
    public volatile Action? DuringClaim;

    public int ResultClaims => Volatile.Read(ref _resultClaims);

    public ISpool Wrap(ISpool inner)
    {
        var proxy = DispatchProxy.Create<ISpool, FaultySpool>();
        ((FaultySpool)(object)proxy).Init(inner, this);
        return proxy;
    }

    internal object? OnClaim(Func<object?> proceed)
    {
        Interlocked.Increment(ref _claims);
        DuringClaim?.Invoke();
        if (HangClaims > 0)
        {
            HangClaims--;
            return new TaskCompletionSource<IReadOnlyList<DeliveryJob>>().Task;
        }

        if (FailClaims > 0)
        {
            FailClaims--;
            return Task.FromException<IReadOnlyList<DeliveryJob>>(new InvalidOperationException("53300: remaining connection slots are reserved"));
        }

        return proceed();
    }

    internal async Task<StoredMessage?> HangAsync(CancellationToken cancellationToken)
    {
        MessageReadStarted.TrySetResult();
        await Task.Delay(Timeout.Infinite, cancellationToken);
        return null;
    }

    internal object? OnComplete(string method, Func<object?> proceed)
    {
        if (method == nameof(ISpool.CompleteAttemptAsync))
        {
            Interlocked.Increment(ref _singleCompletions);
            return proceed();
        }

        Interlocked.Increment(ref _completeBatches);
        if (FailCompleteBatches > 0)
        {
            FailCompleteBatches--;
            return Task.FromException<IReadOnlyList<IReadOnlyList<RecipientUpdate>>>(new InvalidOperationException("40P01: deadlock detected"));
        }

        return proceed();
    }

    internal object? OnResultClaim(Func<object?> proceed)
    {
        if (FailResultClaims > 0)
        {
            FailResultClaims--;
            Interlocked.Increment(ref _resultClaims);
            return Task.FromException<IReadOnlyList<PendingResult>>(new TimeoutException("claiming recorded results did not finish within 00:00:10"));
        }

        Interlocked.Increment(ref _resultClaims);
        return proceed();
    }
}

#pragma warning disable CA1852 // DispatchProxy needs an unsealed, public-constructible type.
internal class FaultySpool : DispatchProxy
#pragma warning restore CA1852
{
    private ISpool _inner = null!;
    private SpoolFaults _faults = null!;

    internal void Init(ISpool inner, SpoolFaults faults)
    {
        _inner = inner;
        _faults = faults;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        object? Proceed() => targetMethod.Invoke(_inner, args);
        if (_faults.Unreachable)
        {
            var down = new InvalidOperationException("57P03: the database system is starting up");
            switch (targetMethod.Name)
            {
                case nameof(ISpool.BeatLeaseClockAsync):
                    return Task.FromException<LeaseClockPause?>(down);
                case nameof(ISpool.ClaimDueAsync):
                    return Task.FromException<IReadOnlyList<DeliveryJob>>(down);
            }
        }

        if (targetMethod.Name == nameof(ISpool.BeatLeaseClockAsync))
        {
            _faults.OnBeat();
        }

        return targetMethod.Name switch
        {
            nameof(ISpool.ClaimDueAsync) when args?[0] is ClaimRequest => _faults.OnClaim(Proceed),
            nameof(ISpool.ClaimResultsAsync) => _faults.OnResultClaim(Proceed),
            nameof(ISpool.GetMessageAsync) when _faults.HangMessageReads => _faults.HangAsync((CancellationToken)args![1]!),
            nameof(ISpool.CompleteAttemptsAsync) or nameof(ISpool.CompleteAttemptAsync) => _faults.OnComplete(targetMethod.Name, Proceed),
            _ => Proceed(),
        };
    }
}
