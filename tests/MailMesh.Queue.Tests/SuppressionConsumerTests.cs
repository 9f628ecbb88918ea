using MailMesh.Contracts;
using MailMesh.Storage;

namespace MailMesh.Queue.Tests;

/// <summary>Through the consumer: a remote 5.1.1 at RCPT suppresses (source bounce); our own NXDOMAIN does not.</summary>
public sealed class SuppressionConsumerTests
{
    [Fact]
    public async Task A_remote_user_unknown_at_RCPT_suppresses_with_source_bounce()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(recipients: [new NewRecipient { Address = "gone@dest.example" }]);
        var job = await host.ClaimAsync(id);

        await host.Harness.Bus.Publish(DeliveryAttemptedConsumerTests.Attempt(job, DeliveryOutcome.Bounced, 550, "5.1.1", "user unknown"));
        await DeliveryAttemptedConsumerTests.ConsumedAsync(host, job.LeaseId, 1);

        var suppression = await host.PolicyStore.GetSuppressionAsync("gone@dest.example", default);
        Assert.NotNull(suppression);
        Assert.Equal(SuppressionSources.Bounce, suppression.Source);
        Assert.Null(suppression.ExpiresAt);
    }

    [Fact]
    public async Task Our_own_NXDOMAIN_bounces_without_suppressing()
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(recipients: [new NewRecipient { Address = "someone@typo.example" }]);
        var job = await host.ClaimAsync(id);
        var attempt = DeliveryAttemptedConsumerTests.Attempt(job, DeliveryOutcome.Bounced, 550, "5.1.2", "typo.example: no such domain (NXDOMAIN)");
        attempt = attempt with { RemoteHost = null, RemoteAddress = null, Results = [.. attempt.Results.Select(r => r with { Stage = ReplyStage.Local })] };

        await host.Harness.Bus.Publish(attempt);
        await DeliveryAttemptedConsumerTests.ConsumedAsync(host, job.LeaseId, 1);

        Assert.Null(await host.PolicyStore.GetSuppressionAsync("someone@typo.example", default));
        var status = await host.Spool.GetStatusAsync(id, default);
        Assert.Equal(RecipientState.Bounced, Assert.Single(status!.Recipients).State);
    }
}
