namespace MailMesh.Storage.IntegrationTests;

/// <summary>The TLS of each attempt's session (issue 12, migration 0021) is kept in the attempt history.</summary>
public abstract partial class SpoolContractTests
{
    [Fact]
    public async Task The_tls_of_each_attempt_is_stored_in_its_history()
    {
        var message = Message("a@example.com", "b@example.com");
        await Spool.StoreAsync(message, CancellationToken.None);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, CancellationToken.None));
        var (a, b) = (job.Recipients[0].RecipientId, job.Recipients[1].RecipientId);
        var t1 = T0 + TimeSpan.FromSeconds(1);
        await Spool.CompleteAttemptsAsync(
        [
            new AttemptCompletion
            {
                MessageId = message.Id,
                LeaseId = job.LeaseId,
                Updates =
                [
                    Update(a, RecipientState.Delivered, t1, 250, "2.0.0", "OK", null) with { TlsProtocol = "TLSv1.3", TlsCipher = "TLS_AES_256_GCM_SHA384", TlsVerification = "dane" },
                    Update(b, RecipientState.Deferred, t1, 451, "4.4.1", "no answer", "ConnectionFailure") with { NextAttemptAt = t1 + TimeSpan.FromMinutes(1) },
                ],
            },
        ], CancellationToken.None);

        var status = await Spool.GetStatusAsync(message.Id, CancellationToken.None);
        Assert.NotNull(status);
        var attempt = Assert.Single(status.Recipients.Single(r => r.RecipientId == a).History);
        Assert.Equal(("TLSv1.3", "TLS_AES_256_GCM_SHA384", "dane"), (attempt.TlsProtocol, attempt.TlsCipher, attempt.TlsVerification));

        // No session answered: nothing is made up.
        var none = Assert.Single(status.Recipients.Single(r => r.RecipientId == b).History);
        Assert.Equal((null, null, null), (none.TlsProtocol, none.TlsCipher, none.TlsVerification));
    }
}
