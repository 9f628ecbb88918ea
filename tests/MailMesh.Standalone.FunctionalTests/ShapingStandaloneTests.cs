using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Traffic shaping in Standalone (SQLite, in-memory budgets): an operator suspends a site through the admin API, its
/// mail waits in the queue without using attempts and without a connection to the destination, and goes out once the
/// suspension is lifted.
/// </summary>
public sealed class ShapingStandaloneTests : IAsyncLifetime
{
    private readonly RelayBench _bench = new("mailmesh-shaping-");
    private StandaloneProcess _mailmesh = null!;

    public async Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        _bench.Dns.AddMx("origin.test", 10, "mx.dest.test");
        var settings = _bench.Settings();
        settings["Delivery:Shaping:RefreshInterval"] = "00:00:00.200";
        settings["Delivery:Shaping:MaxHold"] = "00:00:01";
        _mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);
    }

    public async Task DisposeAsync()
    {
        await _mailmesh.DisposeAsync();
        await _bench.DisposeAsync();
    }

    [Fact]
    public async Task A_suspended_site_holds_its_mail_without_using_attempts_until_the_suspension_is_lifted()
    {
        using var http = TestKeys.Client(_mailmesh.HttpPort, TestKeys.Admin);
        var created = await http.PostAsJsonAsync("/api/v1/admin/shaping/suspensions", new { site = "mx.dest.test", duration = "01:00:00", reason = "maintenance window" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var suspension = await created.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("admin:operator", suspension.GetProperty("createdBy").GetString());
        var listed = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/shaping/suspensions");
        Assert.Equal(suspension.GetProperty("id").GetString(), Assert.Single(listed.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());

        // Wait until Delivery has read it (RefreshInterval): a message sent now is held, not attempted.
        var id = await StandaloneTests.SendAsync(_mailmesh.SmtpPort, "suspended");
        var holds = new HashSet<string>();
        await StandaloneTests.WaitForAsync(async () =>
        {
            var r = (await http.GetFromJsonAsync<JsonElement>($"/api/v1/admin/messages/{id}")).GetProperty("recipients")[0];
            if (r.GetProperty("state").GetString() == "deferred"
                && r.TryGetProperty("lastReplyText", out var text) && text.GetString()!.Contains("suspended", StringComparison.Ordinal))
            {
                // Every hold leaves the attempt count (counted at the claim, given back) and the history as they were.
                Assert.Equal(0, r.GetProperty("attempts").GetInt32());
                Assert.False(r.TryGetProperty("history", out var history) && history.GetArrayLength() > 0);
                holds.Add(r.GetProperty("nextAttemptAt").GetString()!);
            }

            return holds.Count >= 3 ? r : null;
        });
        Assert.Equal(0, _bench.Sink.ConnectionCount);

        // Lifted: the next claim (within MaxHold) delivers it, as its first attempt.
        var lifted = await http.DeleteAsync($"/api/v1/admin/shaping/suspensions/{suspension.GetProperty("id").GetString()}");
        Assert.Equal(HttpStatusCode.NoContent, lifted.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.DeleteAsync($"/api/v1/admin/shaping/suspensions/{suspension.GetProperty("id").GetString()}")).StatusCode);
        await _bench.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(60));
        var delivered = await StandaloneTests.WaitForAsync(async () =>
        {
            var r = (await http.GetFromJsonAsync<JsonElement>($"/api/v1/admin/messages/{id}")).GetProperty("recipients")[0];
            return r.GetProperty("state").GetString() == "delivered" ? r : null;
        });
        Assert.Equal(1, delivered.GetProperty("attempts").GetInt32());
        Assert.Single(delivered.GetProperty("history").EnumerateArray());

        // Scopes: a key without shaping:write cannot suspend.
        using var readOnly = TestKeys.Client(_mailmesh.HttpPort, TestKeys.MessagesOnly);
        Assert.Equal(HttpStatusCode.Forbidden, (await readOnly.PostAsJsonAsync("/api/v1/admin/shaping/suspensions", new { site = "x", duration = "00:10:00" })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.PostAsJsonAsync("/api/v1/admin/shaping/suspensions", new { site = "x" })).StatusCode);
    }
}
