namespace MailMesh.Storage.IntegrationTests;

/// <summary>Traffic per minute from the spool's history (the admin dashboard's charts, migration 0021's index).</summary>
public abstract partial class SpoolContractTests
{
    [Fact]
    public async Task Accepted_messages_and_attempts_are_counted_per_minute_by_outcome()
    {
        var minute = new DateTimeOffset(T0.Year, T0.Month, T0.Day, T0.Hour, T0.Minute, 0, TimeSpan.Zero);
        var first = Message("a@example.com", "b@example.com", "c@example.com");
        await Spool.StoreAsync(first, CancellationToken.None);
        await Spool.StoreAsync(Message("d@example.com") with { ReceivedAt = T0 + TimeSpan.FromMinutes(1) }, CancellationToken.None);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, CancellationToken.None), j => j.MessageId == first.Id);
        var ids = job.Recipients.Select(r => r.RecipientId).ToList();
        var t1 = minute + TimeSpan.FromMinutes(2) + TimeSpan.FromSeconds(30);
        await Spool.CompleteAttemptAsync(first.Id, job.LeaseId,
        [
            Update(ids[0], RecipientState.Delivered, t1, 250, "2.0.0", "OK", null),
            Update(ids[1], RecipientState.Deferred, t1, 451, "4.3.0", "later", "Transient") with { NextAttemptAt = t1 + TimeSpan.FromHours(1) },
            Update(ids[2], RecipientState.Bounced, t1, 550, "5.1.1", "no such user", "InvalidRecipient"),
        ], CancellationToken.None);

        var counts = await Stores.Rates.CountPerMinuteAsync(minute, CancellationToken.None);

        Assert.Equal(
            [new MinuteCounts(minute, 1, 0, 0, 0), new MinuteCounts(minute.AddMinutes(1), 1, 0, 0, 0), new MinuteCounts(minute.AddMinutes(2), 0, 1, 1, 1)],
            counts);
        Assert.Empty(await Stores.Rates.CountPerMinuteAsync(minute.AddMinutes(3), CancellationToken.None));
    }
}
