using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using MailKit.Net.Smtp;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using MimeKit;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// IP pools across the distributed services (real RabbitMQ and PostgreSQL, issue 11): the destination sees the loopback
/// alias and EHLO name of the pool chosen by sender domain and by the HTTP API's <c>pool</c> field (stored in the spool,
/// carried in DeliverMessage), and a warm-up cap counted in PostgreSQL across two Delivery replicas sends exactly its
/// cap and defers the surplus without counting an attempt.
/// </summary>
public sealed class PoolDistributedTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private const string Key = "mmk_pools-e2e-submission";

    [Fact]
    public async Task Pools_by_sender_domain_and_API_field_and_a_warm_up_cap_held_across_replicas()
    {
        await using var mesh = await Mesh.CreateAsync();
        mesh.Settings["Delivery:Pools:default:Addresses:0:Address"] = "127.0.0.61";
        mesh.Settings["Delivery:Pools:default:Addresses:0:EhloName"] = "default.pool.test";
        mesh.Settings["Delivery:Pools:news:Addresses:0:Address"] = "127.0.0.62";
        mesh.Settings["Delivery:Pools:news:Addresses:0:EhloName"] = "news.pool.test";
        mesh.Settings["Delivery:Pools:warm:Addresses:0:Address"] = "127.0.0.63";
        mesh.Settings["Delivery:Pools:warm:Addresses:0:EhloName"] = "warm.pool.test";
        mesh.Settings["Delivery:Pools:warm:Addresses:0:WarmUp:Start"] = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        mesh.Settings["Delivery:Pools:warm:Addresses:0:WarmUp:Schedule:0"] = "2";
        mesh.Settings["Delivery:Pools:warm:Addresses:0:WarmUp:Schedule:1"] = "2";
        mesh.Settings["Delivery:PoolBySenderDomain:news." + Mesh.SenderDomain] = "news";
        mesh.Settings["Ingress:Api:Keys:0:Name"] = "app";
        mesh.Settings["Ingress:Api:Keys:0:Hash"] = ApiKeys.Hash(Key);

        // A deferral waits an hour: what the test sees deferred stays deferred.
        mesh.Settings["Queue:FirstRetryDelay"] = "01:00:00";
        mesh.Settings["Queue:MaxRetryDelay"] = "01:00:00";
        await mesh.StartAsync(deliveryHosts: 2);

        var plain = await SendSmtpAsync(mesh, "app@" + Mesh.SenderDomain, "plain");
        var news = await SendSmtpAsync(mesh, "list@news." + Mesh.SenderDomain, "news");
        using var api = mesh.HttpClient(MeshService.Ingress);
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        var warm = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            var response = await api.PostAsJsonAsync("/api/v1/messages", new { from = "app@" + Mesh.SenderDomain, to = $"warm{i}@{Mesh.DestinationDomain}", text = "warm-up", pool = "warm" });
            response.EnsureSuccessStatusCode();
            warm.Add((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
        }

        await mesh.WaitForStatusAsync(plain, s => s.Recipients.All(r => r.State == RecipientState.Delivered), Patience);
        await mesh.WaitForStatusAsync(news, s => s.Recipients.All(r => r.State == RecipientState.Delivered), Patience);
        var outcomes = new List<RecipientStatus>();
        foreach (var id in warm)
        {
            var status = await mesh.WaitForStatusAsync(id, s => s.Recipients.All(r => r.State is RecipientState.Delivered or RecipientState.Deferred), Patience);
            outcomes.Add(status.Recipients[0]);
        }

        var seen = mesh.Destination.Messages.ToDictionary(m => m.Recipients[0], m => (m.ClientAddress!.ToString(), m.Helo));
        Assert.Equal(("127.0.0.61", "default.pool.test"), seen["plain@" + Mesh.DestinationDomain]);
        Assert.Equal(("127.0.0.62", "news.pool.test"), seen["news@" + Mesh.DestinationDomain]);

        // The cap of two held across both Delivery replicas (counted in PostgreSQL); the three others wait, their attempt
        // taken back.
        Assert.Equal(2, outcomes.Count(r => r.State == RecipientState.Delivered));
        Assert.All(outcomes.Where(r => r.State == RecipientState.Delivered), r => Assert.Equal(("127.0.0.63", "warm.pool.test"), seen[r.Address]));
        var deferred = outcomes.Where(r => r.State == RecipientState.Deferred).ToList();
        Assert.Equal(3, deferred.Count);
        Assert.All(deferred, r =>
        {
            Assert.Equal("4.7.0", r.LastEnhancedCode);
            Assert.Contains("pool warm-up cap reached", r.LastReplyText, StringComparison.Ordinal);
            Assert.Equal(0, r.Attempts);
        });
        Assert.Equal(7, mesh.Destination.Messages.Count + deferred.Count);
    }

    private static async Task<Guid> SendSmtpAsync(DistributedMesh mesh, string from, string local)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse($"{local}@{Mesh.DestinationDomain}"));
        message.Subject = "pools";
        message.Body = new TextPart("plain") { Text = "pools\r\n" };
        using var client = new SmtpClient();
        await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
        return Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
    }
}
