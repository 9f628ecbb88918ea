using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// The admin API's actions in the distributed mode (issue 12), over real RabbitMQ and PostgreSQL: a deferred message
/// held at the Queue is released and delivered; another is bounced and its DSN reaches the sender.
/// </summary>
public sealed class AdminDistributedTests
{
    private const string Key = "mmk_e2e-admin";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Hold_release_and_bounce_through_the_Queue_admin_api()
    {
        await using var mesh = await Mesh.CreateAsync();
        mesh.Settings["Admin:ApiKeys:0:Name"] = "e2e";
        mesh.Settings["Admin:ApiKeys:0:Hash"] = ApiKeys.Hash(Key);
        mesh.Settings["Admin:ApiKeys:0:Scopes"] = string.Join(' ', AdminScopes.All);
        mesh.Destination.RecipientReplies["later@dest.test"] = "450 4.2.1 Mailbox busy, try later";
        mesh.Destination.RecipientReplies["doomed@dest.test"] = "450 4.2.1 Mailbox busy, try later";
        await mesh.StartAsync();
        using var queue = mesh.HttpClient(MeshService.Queue);
        queue.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);

        var held = DistributedPipelineTests.QueuedId(await DistributedPipelineTests.SendAsync(mesh, DistributedPipelineTests.NewMessage("held", "later@" + Mesh.DestinationDomain)));
        var doomed = DistributedPipelineTests.QueuedId(await DistributedPipelineTests.SendAsync(mesh, DistributedPipelineTests.NewMessage("doomed", "doomed@" + Mesh.DestinationDomain)));
        await mesh.WaitForStatusAsync(held, s => s.Recipients[0].State == RecipientState.Deferred, Patience);
        await mesh.WaitForStatusAsync(doomed, s => s.Recipients[0].State == RecipientState.Deferred, Patience);

        // Hold by filter; a recipient caught in flight by a retry is left alone and the action repeated.
        await ActUntilChangedAsync(queue, "/api/v1/admin/messages/actions", new { action = "hold", filter = new { recipient = "later@dest.test" } });
        Assert.Equal(RecipientState.Held, (await mesh.Spool.GetStatusAsync(held, CancellationToken.None))!.Recipients[0].State);

        var bounce = await ActUntilChangedAsync(queue, $"/api/v1/admin/messages/{doomed}/bounce", new { reason = "withdrawn" });
        Assert.Equal(1, bounce.GetProperty("dsnsQueued").GetInt32());
        var dsn = (await mesh.SenderMailbox.WaitForMessagesAsync(1, Patience)).Single();
        Assert.Equal(["sender@origin.test"], dsn.Recipients);
        Assert.Contains("Status: 5.0.0", dsn.DataText, StringComparison.Ordinal);

        mesh.Destination.RecipientReplies.Clear();
        await ActUntilChangedAsync(queue, $"/api/v1/admin/messages/{held}/release", new { });
        var delivered = (await mesh.Destination.WaitForMessagesAsync(1, Patience)).Single();
        Assert.Equal(["later@dest.test"], delivered.Recipients);
        await mesh.WaitForStatusAsync(held, s => s.Recipients[0].State == RecipientState.Delivered, Patience);
        Assert.Equal(RecipientState.Bounced, (await mesh.Spool.GetStatusAsync(doomed, CancellationToken.None))!.Recipients[0].State);

        var audit = await queue.GetFromJsonAsync<JsonElement>("/api/v1/admin/audit");
        Assert.Contains(audit.GetProperty("items").EnumerateArray(), a => a.GetProperty("action").GetString() == "bounce" && a.GetProperty("actor").GetString() == "e2e");
    }

    private static async Task<JsonElement> ActUntilChangedAsync(HttpClient queue, string path, object body)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        while (true)
        {
            using var response = await queue.PostAsJsonAsync(path, body);
            response.EnsureSuccessStatusCode();
            var result = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (result.GetProperty("changed").GetInt32() > 0)
            {
                return result;
            }

            Assert.True(result.GetProperty("skippedInFlight").GetInt32() > 0, "nothing matched and nothing was in flight");
            Assert.True(DateTimeOffset.UtcNow < deadline, "the recipient stayed in flight");
            await Task.Delay(200);
        }
    }
}
