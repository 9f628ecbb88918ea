namespace MailMesh.Storage.IntegrationTests;

/// <summary>
/// Issue 11, IP pools (migration 0016): the pool is stored with the message (and claimed with its jobs), a result that was not attempted takes its
/// attempt back, and the warm-up counters stop at their cap across concurrent takers.
/// </summary>
public abstract partial class SpoolContractTests
{
    [Fact]
    public async Task The_pool_is_stored_with_the_message_and_read_with_the_lease()
    {
        var message = Message("a@example.com") with { Pool = "bulk" };
        await Spool.StoreAsync(message, CancellationToken.None);
        var plain = Message("b@example.com");
        await Spool.StoreAsync(plain, CancellationToken.None);

        Assert.Equal("bulk", (await Spool.GetMessageAsync(message.Id, CancellationToken.None))!.Pool);
        Assert.Null((await Spool.GetMessageAsync(plain.Id, CancellationToken.None))!.Pool);
        var jobs = await Spool.ClaimDueAsync(T0, 10, Lease, CancellationToken.None);
        var job = jobs.Single(j => j.MessageId == message.Id);
        Assert.Equal("bulk", job.Pool);
        Assert.Null(jobs.Single(j => j.MessageId == plain.Id).Pool);
        var taken = await Spool.StartAttemptAsync(message.Id, job.LeaseId, Guid.NewGuid(), T0 + Lease, CancellationToken.None);
        Assert.Equal("bulk", taken!.Pool);
    }

    [Fact]
    public async Task A_result_that_was_not_attempted_takes_its_attempt_back()
    {
        var message = Message("a@example.com", "b@example.com");
        await Spool.StoreAsync(message, CancellationToken.None);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, CancellationToken.None));
        var (a, b) = (job.Recipients[0].RecipientId, job.Recipients[1].RecipientId);
        var t1 = T0 + TimeSpan.FromSeconds(1);
        await Spool.CompleteAttemptsAsync(
            [new AttemptCompletion
            {
                MessageId = message.Id,
                LeaseId = job.LeaseId,
                Updates =
                [
                    Update(a, RecipientState.Deferred, t1, 451, "4.7.0", "pool warm-up cap reached", null) with { NextAttemptAt = t1, NotAttempted = true },
                    Update(b, RecipientState.Deferred, t1, 451, "4.4.1", "connect failed", null) with { NextAttemptAt = t1 },
                ],
            }],
            CancellationToken.None);

        var status = (await Spool.GetStatusAsync(message.Id, CancellationToken.None))!;
        Assert.Equal(0, status.Recipients.Single(r => r.RecipientId == a).Attempts);
        Assert.Equal(1, status.Recipients.Single(r => r.RecipientId == b).Attempts);

        // Claimed again it is the first attempt once more.
        var retry = Assert.Single(await Spool.ClaimDueAsync(t1, 10, Lease, CancellationToken.None));
        Assert.Equal(1, retry.Recipients.Single(r => r.RecipientId == a).Attempt);
        Assert.Equal(2, retry.Recipients.Single(r => r.RecipientId == b).Attempt);
    }

    [Fact]
    public async Task Warm_up_counters_stop_at_the_cap_per_address_and_day_even_when_taken_concurrently()
    {
        var counters = Stores.PoolCounters;
        var day = new DateOnly(2030, 1, 2);

        var takes = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => counters.TryTakeAsync("192.0.2.1", day, 7, CancellationToken.None)));

        Assert.Equal(7, takes.Count(t => t));
        Assert.Equal(7, await counters.CountAsync("192.0.2.1", day, CancellationToken.None));
        Assert.True(await counters.TryTakeAsync("192.0.2.1", day.AddDays(1), 7, CancellationToken.None));
        Assert.True(await counters.TryTakeAsync("192.0.2.2", day, 1, CancellationToken.None));
        Assert.False(await counters.TryTakeAsync("192.0.2.2", day, 1, CancellationToken.None));
        Assert.False(await counters.TryTakeAsync("192.0.2.3", day, 0, CancellationToken.None));
        Assert.Equal(0, await counters.CountAsync("192.0.2.3", day, CancellationToken.None));
    }
}
