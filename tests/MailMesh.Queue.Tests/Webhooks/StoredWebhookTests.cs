using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MailMesh.Contracts;
using MailMesh.Queue.Webhooks;
using MailMesh.Storage;
using MailMesh.Testing.Https;

namespace MailMesh.Queue.Tests.Webhooks;

/// <summary>
/// Webhook endpoints made through the admin API (issue 12), against the Queue service running with a SQLite spool and
/// a real HTTP receiver on a loopback port: the admin API's answers, real events to stored endpoints with their
/// history, disabling, test events, and another replica's change picked up by the refresh loop.
/// </summary>
public sealed class StoredWebhookTests : IAsyncLifetime
{
    private WebhookReceiver _receiver = null!;
    private StoredWebhookHost _host = null!;

    public async Task InitializeAsync()
    {
        _receiver = await WebhookReceiver.StartAsync();
        _host = await StoredWebhookHost.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _receiver.DisposeAsync();
    }

    private async Task<(Guid Id, string? Secret, JsonElement Webhook)> CreateAsync(object body)
    {
        using var http = _host.Client();
        using var response = await http.PostAsJsonAsync("/api/v1/admin/webhooks", body);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = await response.Content.ReadFromJsonAsync<JsonElement>();
        var webhook = created.GetProperty("webhook");
        return (webhook.GetProperty("id").GetGuid(), created.TryGetProperty("secret", out var s) ? s.GetString() : null, webhook);
    }

    private async Task<JsonElement> DeliveriesAsync(Guid id, string query = "")
    {
        using var http = _host.Client();
        return await http.GetFromJsonAsync<JsonElement>($"/api/v1/admin/webhooks/{id}/deliveries{query}");
    }

    [Fact]
    public async Task A_stored_endpoint_receives_real_events_signed_with_its_generated_secret_and_the_history_records_each_post()
    {
        var (id, secret, webhook) = await CreateAsync(new { url = _receiver.Url("/stored").ToString(), events = new[] { "bounced", "Delivered" } });
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.Equal(["Delivered", "Bounced"], webhook.GetProperty("events").EnumerateArray().Select(e => e.GetString()));
        Assert.True(webhook.GetProperty("signed").GetBoolean());

        // A type it did not ask for is not sent; one it asked for is, signed with the secret shown once.
        _receiver.Script.Enqueue(503);
        await _host.PublishAsync(MessageEventType.Deferred);
        var sent = await _host.PublishAsync(MessageEventType.Bounced);
        var failed = await _receiver.NextAsync();
        var request = await _receiver.NextAsync();
        Assert.Equal("/stored", request.Path);
        Assert.Equal(failed.Headers[MessageEventWebhookConsumer.EventIdHeader], request.Headers[MessageEventWebhookConsumer.EventIdHeader]);
        using var json = JsonDocument.Parse(request.Body);
        Assert.Equal(sent.MessageId, json.RootElement.GetProperty("messageId").GetGuid());
        var timestamp = request.Headers[MessageEventWebhookConsumer.TimestampHeader];
        byte[] signed = [.. Encoding.ASCII.GetBytes(timestamp + "."), .. request.Body];
        Assert.Equal("sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret!), signed)), request.Headers[MessageEventWebhookConsumer.SignatureHeader]);

        // Both POSTs are in the history, newest first: the 503, then the retry's 200.
        var history = await StoredWebhookHost.EventuallyAsync(async () =>
        {
            var page = await DeliveriesAsync(id);
            return page.GetProperty("items").GetArrayLength() == 2 ? new[] { page } : null;
        });
        var items = history[0].GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([200, 503], items.Select(i => i.GetProperty("statusCode").GetInt32()));
        Assert.Equal([true, false], items.Select(i => i.GetProperty("succeeded").GetBoolean()));
        Assert.All(items, i => Assert.Equal(("Bounced", sent.MessageId, request.Headers[MessageEventWebhookConsumer.EventIdHeader]),
            (i.GetProperty("eventType").GetString(), i.GetProperty("messageId").GetGuid(), i.GetProperty("eventId").GetString())));
        Assert.Contains("503", items[1].GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(_receiver.All, r => r.Headers[MessageEventWebhookConsumer.EventTypeHeader] == "Deferred");

        // Keyset pages: one row per page, then none.
        var first = await DeliveriesAsync(id, "?limit=1");
        var next = first.GetProperty("next").GetInt64();
        var second = await DeliveriesAsync(id, $"?limit=1&before={next}");
        Assert.Equal(items[1].GetProperty("id").GetInt64(), second.GetProperty("items")[0].GetProperty("id").GetInt64());
        var third = await DeliveriesAsync(id, $"?limit=1&before={second.GetProperty("next").GetInt64()}");
        Assert.Equal(0, third.GetProperty("items").GetArrayLength());
        Assert.False(third.TryGetProperty("next", out _));
    }

    [Fact]
    public async Task A_disabled_endpoint_stops_receiving_and_an_enabled_one_starts_again()
    {
        var (quiet, _, _) = await CreateAsync(new { url = _receiver.Url("/quiet").ToString() });
        var (witness, _, _) = await CreateAsync(new { url = _receiver.Url("/witness").ToString() });
        using var http = _host.Client();

        using (var disabled = await http.PostAsync($"/api/v1/admin/webhooks/{quiet}/disable", null))
        {
            var body = await disabled.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal((false, true), (body.GetProperty("enabled").GetBoolean(), body.GetProperty("changed").GetBoolean()));
        }

        var again = await http.PostAsync($"/api/v1/admin/webhooks/{quiet}/disable", null);
        Assert.False((await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("changed").GetBoolean());

        // The witness's history row is written after every POST of the event finished, so by then the disabled endpoint
        // would have had its request.
        await _host.PublishAsync(MessageEventType.Delivered);
        await StoredWebhookHost.EventuallyAsync(async () =>
            (await DeliveriesAsync(witness)).GetProperty("items").GetArrayLength() == 1 ? "done" : null);
        Assert.Equal(["/witness"], _receiver.All.Select(r => r.Path));
        Assert.Equal(0, (await DeliveriesAsync(quiet)).GetProperty("items").GetArrayLength());

        (await http.PostAsync($"/api/v1/admin/webhooks/{quiet}/enable", null)).EnsureSuccessStatusCode();
        await _host.PublishAsync(MessageEventType.Delivered);
        await StoredWebhookHost.EventuallyAsync(async () =>
            (await DeliveriesAsync(quiet)).GetProperty("items").GetArrayLength() == 1 ? "done" : null);
        Assert.Contains(_receiver.All, r => r.Path == "/quiet");

        var list = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/webhooks");
        var listed = list.GetProperty("items").EnumerateArray().Single(w => w.GetProperty("id").GetGuid() == quiet);
        Assert.Equal(("hooks-admin", true), (listed.GetProperty("updatedBy").GetString(), listed.GetProperty("enabled").GetBoolean()));
        Assert.False(listed.TryGetProperty("secret", out _));
    }

    [Fact]
    public async Task A_test_event_is_sent_now_recorded_and_its_outcome_returned()
    {
        var (id, _, _) = await CreateAsync(new { url = _receiver.Url("/test").ToString(), secret = "a-shared-secret-of-ours" });
        using var http = _host.Client();

        using var ok = await http.PostAsync($"/api/v1/admin/webhooks/{id}/test", null);
        var outcome = await ok.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal((200, true), (outcome.GetProperty("statusCode").GetInt32(), outcome.GetProperty("succeeded").GetBoolean()));
        var request = await _receiver.NextAsync();
        Assert.Equal("Test", request.Headers[MessageEventWebhookConsumer.EventTypeHeader]);
        Assert.Equal(outcome.GetProperty("eventId").GetString(), request.Headers[MessageEventWebhookConsumer.EventIdHeader]);
        Assert.Contains("hooks-admin", JsonDocument.Parse(request.Body).RootElement.GetProperty("text").GetString(), StringComparison.Ordinal);

        _receiver.Script.Enqueue(500);
        var failed = await (await http.PostAsync($"/api/v1/admin/webhooks/{id}/test", null)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal((500, false), (failed.GetProperty("statusCode").GetInt32(), failed.GetProperty("succeeded").GetBoolean()));

        // A receiver that is not there: no status, an error.
        var gone = await CreateAsync(new { url = $"http://127.0.0.1:{Testing.Infrastructure.LoopbackPort.Free().ToString(CultureInfo.InvariantCulture)}/nobody" });
        var refused = await (await http.PostAsync($"/api/v1/admin/webhooks/{gone.Id}/test", null)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(refused.GetProperty("succeeded").GetBoolean());
        Assert.False(refused.TryGetProperty("statusCode", out _));
        Assert.False(string.IsNullOrEmpty(refused.GetProperty("error").GetString()));

        var history = (await DeliveriesAsync(id)).GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([500, 200], history.Select(h => h.GetProperty("statusCode").GetInt32()));
        Assert.All(history, h => Assert.Equal("Test", h.GetProperty("eventType").GetString()));
    }

    [Fact]
    public async Task Bad_input_is_a_400_with_the_reason_unknown_ids_404_and_each_change_is_audited_with_the_key()
    {
        using var http = _host.Client();
        async Task<(HttpStatusCode, string)> Problem(HttpResponseMessage response)
        {
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            return (response.StatusCode, body.GetProperty("title").GetString()!);
        }

        Assert.Equal((HttpStatusCode.BadRequest, "Invalid url"), await Problem(await http.PostAsJsonAsync("/api/v1/admin/webhooks", new { url = "ftp://hooks.example/" })));
        Assert.Equal((HttpStatusCode.BadRequest, "Invalid url"), await Problem(await http.PostAsJsonAsync("/api/v1/admin/webhooks", new { url = "/relative" })));
        Assert.Equal((HttpStatusCode.BadRequest, "Invalid events"), await Problem(await http.PostAsJsonAsync("/api/v1/admin/webhooks", new { url = "https://hooks.example/", events = new[] { "Opened" } })));
        Assert.Equal((HttpStatusCode.BadRequest, "Invalid events"), await Problem(await http.PostAsJsonAsync("/api/v1/admin/webhooks", new { url = "https://hooks.example/", events = new[] { "3" } })));
        Assert.Equal((HttpStatusCode.BadRequest, "Invalid secret"), await Problem(await http.PostAsJsonAsync("/api/v1/admin/webhooks", new { url = "https://hooks.example/", secret = "short" })));
        Assert.Equal((HttpStatusCode.BadRequest, "Malformed id"), await Problem(await http.PostAsync("/api/v1/admin/webhooks/not-an-id/test", null)));
        Assert.Equal((HttpStatusCode.NotFound, "Unknown webhook"), await Problem(await http.PostAsync($"/api/v1/admin/webhooks/{Guid.NewGuid()}/disable", null)));
        Assert.Equal(HttpStatusCode.NotFound, (await http.DeleteAsync($"/api/v1/admin/webhooks/{Guid.NewGuid()}")).StatusCode);

        var (id, _, _) = await CreateAsync(new { url = "https://hooks.example/a" });
        using (var patched = await http.PatchAsJsonAsync($"/api/v1/admin/webhooks/{id}", new { url = "https://hooks.example/b", events = new[] { "Expired" }, rotateSecret = true }))
        {
            var body = await patched.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("https://hooks.example/b", body.GetProperty("webhook").GetProperty("url").GetString());
            Assert.Equal(["Expired"], body.GetProperty("webhook").GetProperty("events").EnumerateArray().Select(e => e.GetString()));
            Assert.StartsWith("whsec_", body.GetProperty("secret").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal((HttpStatusCode.BadRequest, "Invalid url"), await Problem(await http.PatchAsJsonAsync($"/api/v1/admin/webhooks/{id}", new { url = "mailto:x@example.org" })));
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync($"/api/v1/admin/webhooks/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.DeleteAsync($"/api/v1/admin/webhooks/{id}")).StatusCode);

        var audit = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/audit");
        Assert.Equal(["webhook.delete", "webhook.update", "webhook.create"],
            audit.GetProperty("items").EnumerateArray().Select(a => a.GetProperty("action").GetString()));
        Assert.All(audit.GetProperty("items").EnumerateArray(), a => Assert.Equal("hooks-admin", a.GetProperty("actor").GetString()));

        // A key with webhooks:read lists but cannot change or test.
        using var reader = _host.Client(StoredWebhookHost.ReaderKey);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/v1/admin/webhooks")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsJsonAsync("/api/v1/admin/webhooks", new { url = "https://hooks.example/" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsync($"/api/v1/admin/webhooks/{id}/test", null)).StatusCode);
        using var nobody = _host.Client(key: null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await nobody.GetAsync("/api/v1/admin/webhooks")).StatusCode);
    }

    [Fact]
    public async Task Turned_off_a_change_is_refused_with_409_and_the_reason_and_the_list_still_answers()
    {
        await using var off = await StoredWebhookHost.StartAsync(new Dictionary<string, string> { ["Queue:Webhooks:Enabled"] = "false" });
        using var http = off.Client();

        using var created = await http.PostAsJsonAsync("/api/v1/admin/webhooks", new { url = "https://hooks.example/" });
        Assert.Equal(HttpStatusCode.Conflict, created.StatusCode);
        Assert.Contains("Queue:Webhooks:Enabled", (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Conflict, (await http.PostAsync($"/api/v1/admin/webhooks/{Guid.NewGuid()}/test", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/v1/admin/webhooks")).StatusCode);
    }

    [Fact]
    public async Task An_endpoint_stored_by_another_replica_is_picked_up_by_the_refresh_loop()
    {
        // Written to the shared store directly, as another Queue replica's admin API would.
        var endpoint = new WebhookEndpoint
        {
            Id = Guid.NewGuid(),
            Url = _receiver.Url("/elsewhere").ToString(),
            CreatedAt = DateTimeOffset.UtcNow,
            CreatedBy = "other-replica",
        };
        await _host.Store.AddEndpointAsync(endpoint, CancellationToken.None);
        await StoredWebhookHost.EventuallyAsync(() => Task.FromResult(_host.Stored.Enabled.Any(t => t.StoredId == endpoint.Id) ? "seen" : null));

        await _host.PublishAsync(MessageEventType.Expired);
        var request = await _receiver.NextAsync();
        Assert.Equal("/elsewhere", request.Path);
        Assert.False(request.Headers.ContainsKey(MessageEventWebhookConsumer.SignatureHeader));

        await _host.Store.UpdateEndpointAsync(endpoint with { Enabled = false, UpdatedAt = DateTimeOffset.UtcNow, UpdatedBy = "other-replica" }, WebhookAudit.Disabled, CancellationToken.None);
        await StoredWebhookHost.EventuallyAsync(() => Task.FromResult(_host.Stored.Enabled.Count == 0 ? "gone" : null));
    }
}
