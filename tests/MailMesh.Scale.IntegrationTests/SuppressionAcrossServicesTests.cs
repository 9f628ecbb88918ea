using MailMesh.Testing.Infrastructure;
using MailMesh.Storage;
using MailMesh.Storage.Postgres;
using MailMesh.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Scale.IntegrationTests;

/// <summary>
/// Ingress checks recipients against the suppression list it keeps in memory, following PostgreSQL's notifications
/// (PostgresSuppressionFilter): a suppression the Policy service writes (its admin API, Queue's hard bounces) is refused
/// at RCPT by every Ingress replica, and removing it lets the address through again.
/// </summary>
public sealed class SuppressionAcrossServicesTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_suppression_written_by_the_policy_service_is_refused_at_every_ingress_replica()
    {
        await using var cluster = await Cluster.CreateAsync();
        await cluster.StartAsync(MeshService.Queue);
        var policy = await cluster.StartAsync(MeshService.Policy);
        var ingresses = new[] { await cluster.StartAsync(MeshService.Ingress), await cluster.StartAsync(MeshService.Ingress) };
        var clients = new List<RawSmtp>();
        try
        {
            foreach (var ingress in ingresses)
            {
                var client = await RawSmtp.ConnectAsync(DistributedMesh.SmtpEndpoint(ingress));
                clients.Add(client);
                await client.ExpectAsync("250", "EHLO client.test");
                await client.ExpectAsync("250", "MAIL FROM:<sender@origin.test>");
                await client.ExpectAsync("250", "RCPT TO:<gone@dest.test>");
                await client.ExpectAsync("250", "RSET");
            }

            // Each replica's filter has loaded the list (the RCPT above started it) and listens.
            var filters = ingresses.Select(i => ((PostgresPolicyStore)i.Services.GetRequiredService<IPolicyStore>()).Filter).ToList();
            await WaitUntilAsync(() => filters.TrueForAll(f => f.IsLive));

            var store = policy.Services.GetRequiredService<IPolicyStore>();
            await store.AddSuppressionAsync(new Suppression { Address = "Gone@dest.test", Reason = "hard bounce 550 5.1.1", CreatedAt = DateTimeOffset.UtcNow }, default);
            foreach (var client in clients)
            {
                var refusal = await UntilAsync(client, reply => reply.StartsWith("550 5.1.1", StringComparison.Ordinal));
                Assert.Contains("suppressed", refusal, StringComparison.Ordinal);
                await client.ExpectAsync("250", "RCPT TO:<someone@dest.test>");
                await client.ExpectAsync("250", "RSET");
            }

            // Heard through the notification: the filters stayed live on their first load all along.
            Assert.All(filters, f => Assert.True(f.IsLive && f.Loads == 1));

            Assert.True(await store.RemoveSuppressionAsync("gone@dest.test", default));
            foreach (var client in clients)
            {
                await UntilAsync(client, reply => reply.StartsWith("250", StringComparison.Ordinal));
                await client.ExpectAsync("250", "RSET");
            }
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    private static Task WaitUntilAsync(Func<bool> condition) =>
        Eventually.WaitUntilAsync(condition, Patience, "an Ingress replica's suppression filter never went live");

    /// <summary>MAIL and RCPT TO gone@dest.test in a fresh transaction until the RCPT reply satisfies <paramref name="done"/>.</summary>
    private static async Task<string> UntilAsync(RawSmtp client, Func<string, bool> done)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        while (true)
        {
            await client.ExpectAsync("250", "MAIL FROM:<sender@origin.test>");
            var reply = await client.SendAndReadAsync("RCPT TO:<gone@dest.test>");
            if (done(reply))
            {
                return reply;
            }

            await client.ExpectAsync("250", "RSET");
            Assert.True(DateTimeOffset.UtcNow < deadline, $"RCPT TO:<gone@dest.test> still answered '{reply}'");
            await Task.Delay(50);
        }
    }
}
