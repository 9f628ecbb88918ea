namespace MailMesh.Storage.IntegrationTests;

/// <summary>Traffic shaping held the work back (issue 11): the claim's attempt is given back, and no history is written.</summary>
public abstract partial class SpoolContractTests
{
    [Fact]
    public async Task A_result_not_attempted_restores_the_attempt_count_and_adds_no_history()
    {
        var message = Message("a@example.com");
        await Spool.StoreAsync(message, CancellationToken.None);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, CancellationToken.None));
        var id = job.Recipients[0].RecipientId;
        Assert.Equal(1, job.Recipients[0].Attempt);
        var until = T0 + TimeSpan.FromMinutes(15);
        await Spool.CompleteAttemptsAsync(
            [new AttemptCompletion
            {
                MessageId = message.Id,
                LeaseId = job.LeaseId,
                Updates = [new RecipientUpdate
                {
                    RecipientId = id, State = RecipientState.Deferred, NextAttemptAt = until, AttemptedAt = T0 + TimeSpan.FromSeconds(1),
                    ReplyCode = 451, EnhancedCode = "4.4.5", ReplyText = "Not attempted (traffic shaping): site google is suspended", NotAttempted = true,
                }],
            }],
            CancellationToken.None);

        var status = await Spool.GetStatusAsync(message.Id, CancellationToken.None);
        var recipient = Assert.Single(status!.Recipients);
        Assert.Equal((RecipientState.Deferred, 0, until), (recipient.State, recipient.Attempts, recipient.NextAttemptAt!.Value));
        Assert.Empty(recipient.History);

        // Claimed again when due: this is its first attempt still.
        Assert.Empty(await Spool.ClaimDueAsync(until - TimeSpan.FromSeconds(1), 10, Lease, CancellationToken.None));
        var again = Assert.Single(await Spool.ClaimDueAsync(until, 10, Lease, CancellationToken.None));
        Assert.Equal(1, again.Recipients[0].Attempt);
    }
}
