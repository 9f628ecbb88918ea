namespace MailMesh.Storage.IntegrationTests;

/// <summary>The bounce class of each reply (issue 11, migration 0011) is kept with the recipient and its attempt history.</summary>
public abstract partial class SpoolContractTests
{
    [Fact]
    public async Task The_bounce_class_is_stored_with_the_recipient_and_each_attempt()
    {
        var message = Message("a@example.com", "b@example.com");
        await Spool.StoreAsync(message, CancellationToken.None);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, CancellationToken.None));
        var (a, b) = (job.Recipients[0].RecipientId, job.Recipients[1].RecipientId);
        var t1 = T0 + TimeSpan.FromSeconds(1);
        await Spool.CompleteAttemptAsync(message.Id, job.LeaseId,
        [
            Update(a, RecipientState.Deferred, t1, 421, "4.7.0", "rate limited", "Throttled") with { NextAttemptAt = t1 + TimeSpan.FromMinutes(1) },
            Update(b, RecipientState.Delivered, t1, 250, "2.0.0", "OK", null),
        ], CancellationToken.None);

        // The retry goes through the batched path (CompleteAttemptsAsync), as Queue applies results.
        var retry = Assert.Single(await Spool.ClaimDueAsync(t1 + TimeSpan.FromMinutes(1), 10, Lease, CancellationToken.None));
        var t2 = t1 + TimeSpan.FromMinutes(2);
        await Spool.CompleteAttemptsAsync(
            [new AttemptCompletion { MessageId = message.Id, LeaseId = retry.LeaseId, Updates = [Update(a, RecipientState.Bounced, t2, 550, "5.1.1", "no such user", "InvalidRecipient")] }],
            CancellationToken.None);

        var status = await Spool.GetStatusAsync(message.Id, CancellationToken.None);
        Assert.NotNull(status);
        var ra = status.Recipients.Single(r => r.RecipientId == a);
        Assert.Equal("InvalidRecipient", ra.LastBounceClass);
        Assert.Equal(["Throttled", "InvalidRecipient"], ra.History.Select(h => h.BounceClass));
        var rb = status.Recipients.Single(r => r.RecipientId == b);
        Assert.Null(rb.LastBounceClass);
        Assert.Null(Assert.Single(rb.History).BounceClass);

        var statuses = await Spool.GetStatusesAsync([message.Id], CancellationToken.None);
        Assert.Equal("InvalidRecipient", statuses[message.Id].Recipients.Single(r => r.RecipientId == a).LastBounceClass);
    }

    private static RecipientUpdate Update(long id, RecipientState state, DateTimeOffset at, int code, string enhanced, string text, string? bounceClass) => new()
    {
        RecipientId = id,
        State = state,
        AttemptedAt = at,
        ReplyCode = code,
        EnhancedCode = enhanced,
        ReplyText = text,
        RemoteHost = "mx.example.com",
        BounceClass = bounceClass,
    };
}
