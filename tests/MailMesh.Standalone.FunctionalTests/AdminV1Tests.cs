using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MailMesh.Cli;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// The admin API v1 (issue 12) and the <c>mailmesh</c> CLI against a running standalone (SQLite): search, a message's
/// life, hold and release around a deferring destination, bounce with its DSN, suppressions with CSV, exit codes.
/// </summary>
public sealed class AdminV1Tests : IAsyncLifetime
{
    private readonly RelayBench _bench = new("mailmesh-adminv1-");
    private StandaloneProcess _mailmesh = null!;

    public async Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        _bench.Dns.AddMx("origin.test", 10, "mx.dest.test");
        _mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, _bench.Settings());
    }

    public async Task DisposeAsync()
    {
        await _mailmesh.DisposeAsync();
        await _bench.DisposeAsync();
    }

    private HttpClient Admin() => TestKeys.Client(_mailmesh.HttpPort, TestKeys.Admin);

    private async Task<string> StateAsync(HttpClient http, Guid id)
    {
        var detail = await http.GetFromJsonAsync<JsonElement>($"/api/v1/admin/messages/{id}");
        return detail.GetProperty("recipients")[0].GetProperty("state").GetString()!;
    }

    private Task WaitForStateAsync(HttpClient http, Guid id, string state) =>
        StandaloneTests.WaitForAsync(async () => await StateAsync(http, id) == state ? default(JsonElement) : null);

    [Fact]
    public async Task Cli_makes_a_key_that_works_lists_it_and_disables_it()
    {
        var made = await RunCliAsync(["keys", "create", "ci-reader", "--kind", "admin", "--scopes", "messages:read", "--json"]);
        Assert.True(made.ExitCode == 0, made.Output);
        string secret;
        using (var created = JsonDocument.Parse(made.Stdout))
        {
            secret = created.RootElement.GetProperty("key").GetString()!;
        }

        using (var http = TestKeys.Client(_mailmesh.HttpPort, secret))
        {
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri("/api/v1/admin/messages", UriKind.Relative))).StatusCode);
        }

        var list = await RunCliAsync(["keys"]);
        Assert.Equal(0, list.ExitCode);
        Assert.Contains("ci-reader", list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, list.Stdout, StringComparison.Ordinal);

        var disabled = await RunCliAsync(["keys", "disable", "admin", "ci-reader"]);
        Assert.True(disabled.ExitCode == 0, disabled.Output);
        Assert.Contains("Disabled admin key ci-reader.", disabled.Stdout, StringComparison.Ordinal);
        using (var http = TestKeys.Client(_mailmesh.HttpPort, secret))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(new Uri("/api/v1/admin/messages", UriKind.Relative))).StatusCode);
        }

        Assert.Equal(2, (await RunCliAsync(["keys", "disable", "admin", "nobody"])).ExitCode);
        Assert.Equal(1, (await RunCliAsync(["keys", "create", "x"])).ExitCode);
    }

    [Fact]
    public async Task Cli_holds_a_deferred_message_lists_it_releases_it_and_it_is_delivered()
    {
        _bench.Sink.RecipientReplies["user@dest.test"] = "451 4.3.0 not now";
        using var http = Admin();
        var id = await StandaloneTests.SendAsync(_mailmesh.SmtpPort, "held");
        await WaitForStateAsync(http, id, "deferred");

        // A recipient in flight (a retry under way) is left alone and said so: the documented answer is to repeat.
        var hold = await RunCliAsync(["message", "hold", "--domain", "dest.test", "--yes"]);
        for (var tries = 0; tries < 20 && await StateAsync(http, id) != "held"; tries++)
        {
            Assert.True(hold.ExitCode == 0, hold.Output);
            hold = await RunCliAsync(["message", "hold", "--domain", "dest.test", "--yes"]);
        }

        Assert.Contains("recipient(s) changed by hold", hold.Output, StringComparison.Ordinal);
        Assert.Equal("held", await StateAsync(http, id));

        var list = await RunCliAsync(["message", "list", "--state", "held", "--json"]);
        Assert.Equal(0, list.ExitCode);
        using (var page = JsonDocument.Parse(list.Stdout))
        {
            Assert.Equal(id.ToString(), Assert.Single(page.RootElement.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());
        }

        var queue = await RunCliAsync(["queue"]);
        Assert.Equal(0, queue.ExitCode);
        Assert.Contains("dest.test", queue.Stdout, StringComparison.Ordinal);

        // Held means the scheduler leaves it alone, even now that the destination would take it.
        _bench.Sink.RecipientReplies.Clear();
        var release = await RunCliAsync(["message", "release", id.ToString()]);
        Assert.True(release.ExitCode == 0, release.Output);
        var delivered = await _bench.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(60));
        Assert.Contains("Subject: held", delivered[0].DataText, StringComparison.Ordinal);
        await WaitForStateAsync(http, id, "delivered");

        // Idempotent and audited: releasing again changes nothing, and both show in the audit.
        var again = await RunCliAsync(["message", "release", id.ToString(), "--json"]);
        using (var result = JsonDocument.Parse(again.Stdout))
        {
            Assert.Equal(0, result.RootElement.GetProperty("changed").GetInt32());
        }

        var audit = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/audit");
        var actions = audit.GetProperty("items").EnumerateArray().Select(a => (a.GetProperty("action").GetString(), a.GetProperty("actor").GetString(), a.GetProperty("changed").GetInt32())).ToList();
        Assert.Equal([("release", "operator", 0), ("release", "operator", 1)], actions.Take(2));
        Assert.Contains(("hold", "operator", 1), actions);
    }

    [Fact]
    public async Task Bounce_through_the_api_sends_a_dsn_to_the_sender_once()
    {
        _bench.Sink.RecipientReplies["user@dest.test"] = "451 4.3.0 not now";
        using var http = Admin();
        var id = await StandaloneTests.SendAsync(_mailmesh.SmtpPort, "doomed");
        await WaitForStateAsync(http, id, "deferred");

        JsonElement result = default;
        for (var tries = 0; tries < 20 && result.ValueKind == JsonValueKind.Undefined; tries++)
        {
            // Repeated while the recipient is in flight (a retry under way): the action leaves it alone then.
            using var response = await http.PostAsJsonAsync($"/api/v1/admin/messages/{id}/bounce", new { reason = "cancelled by support" });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var answer = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (answer.GetProperty("changed").GetInt32() > 0)
            {
                result = answer;
            }
            else
            {
                Assert.Equal(1, answer.GetProperty("skippedInFlight").GetInt32());
                await Task.Delay(200);
            }
        }

        Assert.Equal(1, result.GetProperty("changed").GetInt32());
        Assert.Equal(1, result.GetProperty("dsnsQueued").GetInt32());

        var dsn = await _bench.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(60));
        Assert.Equal(["app@origin.test"], dsn[0].Recipients);
        Assert.Contains("report-type=delivery-status", dsn[0].DataText, StringComparison.Ordinal);
        Assert.Contains("Status: 5.0.0", dsn[0].DataText, StringComparison.Ordinal);

        using var again = await http.PostAsJsonAsync($"/api/v1/admin/messages/{id}/bounce", new { reason = "cancelled by support" });
        Assert.Equal(0, (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("changed").GetInt32());

        var detail = await http.GetFromJsonAsync<JsonElement>($"/api/v1/admin/messages/{id}");
        Assert.Equal("bounced", detail.GetProperty("recipients")[0].GetProperty("state").GetString());
        Assert.Contains(detail.GetProperty("events").EnumerateArray(), e => e.GetProperty("type").GetString() == "bounced"
            && e.GetProperty("detail").GetString() == "cancelled by support");
    }

    [Fact]
    public async Task Search_pages_with_a_cursor_and_a_message_shows_headers_attempts_and_raw_content()
    {
        _bench.Sink.RecipientReplies["user@dest.test"] = "451 4.3.0 not now";
        using var http = Admin();
        var ids = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add(await StandaloneTests.SendAsync(_mailmesh.SmtpPort, "page " + i));
        }

        var first = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/messages?limit=2&sender=app@origin.test");
        Assert.Equal(2, first.GetProperty("items").GetArrayLength());
        var next = first.GetProperty("next").GetString();
        var second = await http.GetFromJsonAsync<JsonElement>($"/api/v1/admin/messages?limit=2&sender=app@origin.test&cursor={next}");
        var listed = first.GetProperty("items").EnumerateArray().Concat(second.GetProperty("items").EnumerateArray()).Select(m => Guid.Parse(m.GetProperty("id").GetString()!)).ToList();
        Assert.Equal(ids.ToHashSet(), listed.ToHashSet());
        Assert.Equal(3, listed.Count);
        Assert.False(second.TryGetProperty("next", out _));

        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync(new Uri("/api/v1/admin/messages?cursor=nonsense", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync(new Uri("/api/v1/admin/messages?state=lost", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync(new Uri("/api/v1/admin/messages?class=Lost", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync(new Uri("/api/v1/admin/messages?class=3", UriKind.Relative))).StatusCode);

        await WaitForStateAsync(http, ids[0], "deferred");
        var detail = await http.GetFromJsonAsync<JsonElement>($"/api/v1/admin/messages/{ids[0]}");
        Assert.Contains(detail.GetProperty("headers").EnumerateArray(), h => h.GetProperty("name").GetString() == "Subject" && h.GetProperty("value").GetString() == "page 0");
        var attempt = detail.GetProperty("recipients")[0].GetProperty("history")[0];
        Assert.Equal(451, attempt.GetProperty("replyCode").GetInt32());
        Assert.False(string.IsNullOrEmpty(attempt.GetProperty("remoteHost").GetString()));

        // The attempt's session (migration 0021): the sink offers no STARTTLS, so clear text, not verified; the CLI shows it.
        Assert.Equal("none", attempt.GetProperty("tls").GetProperty("protocol").GetString());
        Assert.False(attempt.GetProperty("tls").GetProperty("verified").GetBoolean());
        var shown = await RunCliAsync(["message", "show", ids[0].ToString()]);
        Assert.True(shown.ExitCode == 0, shown.Output);
        Assert.Contains("none (clear text)", shown.Stdout, StringComparison.Ordinal);
        if (detail.TryGetProperty("traceId", out var traceId))
        {
            Assert.Equal(32, traceId.GetString()!.Length);
        }

        var raw = await http.GetStringAsync(new Uri($"/api/v1/admin/messages/{ids[0]}/raw", UriKind.Relative));
        Assert.Contains("Subject: page 0", raw, StringComparison.Ordinal);

        // A key that may read status may not act, nor read content.
        using var reader = TestKeys.Client(_mailmesh.HttpPort, TestKeys.MessagesOnly);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsync(new Uri($"/api/v1/admin/messages/{ids[0]}/hold", UriKind.Relative), null)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.GetAsync(new Uri($"/api/v1/admin/messages/{ids[0]}/raw", UriKind.Relative))).StatusCode);

        // A bulk action needs a target.
        using var untargeted = await http.PostAsJsonAsync("/api/v1/admin/messages/actions", new { action = "hold" });
        Assert.Equal(HttpStatusCode.BadRequest, untargeted.StatusCode);
    }

    [Fact]
    public async Task Cli_manages_suppressions_with_csv_and_its_exit_codes_can_be_trusted()
    {
        Assert.Equal(0, (await RunCliAsync(["suppress", "add", "gone@example.org", "--reason", "asked to stop"])).ExitCode);
        var list = await RunCliAsync(["suppress", "list", "--json"]);
        Assert.Equal(0, list.ExitCode);
        using (var page = JsonDocument.Parse(list.Stdout))
        {
            Assert.Contains(page.RootElement.GetProperty("items").EnumerateArray(), s => s.GetProperty("address").GetString() == "gone@example.org");
        }

        var csv = Path.Combine(_bench.WorkingDirectory.FullName, "import.csv");
        await File.WriteAllTextAsync(csv, "address,reason\r\na@import.test,\"complained, twice\"\r\nnot-an-address,x\r\nb@import.test\r\n");
        var import = await RunCliAsync(["suppress", "import", csv]);
        Assert.Equal(0, import.ExitCode);
        Assert.Contains("Imported 2 suppression(s); 1 line(s) refused.", import.Stdout, StringComparison.Ordinal);
        var export = await RunCliAsync(["suppress", "export"]);
        Assert.Contains("a@import.test,\"complained, twice\",", export.Stdout, StringComparison.Ordinal);
        var domain = await RunCliAsync(["suppress", "list", "--domain", "import.test"]);
        Assert.Contains("b@import.test", domain.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("gone@example.org", domain.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await RunCliAsync(["suppress", "remove", "gone@example.org"])).ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await RunCliAsync(["suppress", "remove", "gone@example.org"])).ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await RunCliAsync(["message", "show", Guid.NewGuid().ToString()])).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await RunCliAsync(["frobnicate"])).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await RunCliAsync(["message", "hold", "--domian", "dest.test", "--yes"])).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await RunCliAsync(["message", "show", "not-a-uuid"])).ExitCode);
        Assert.Equal(ExitCodes.Auth, (await RunCliAsAsync(["queue"], key: "mmk_wrong")).ExitCode);
        Assert.Equal(ExitCodes.Auth, (await RunCliAsAsync(["message", "hold", Guid.NewGuid().ToString()], key: TestKeys.MessagesOnly)).ExitCode);
        Assert.Equal(ExitCodes.Unreachable, (await RunCliAsAsync(["queue"], TestKeys.Admin, url: $"http://127.0.0.1:{Testing.Infrastructure.LoopbackPort.Free()}")).ExitCode);
        var declined = await RunCliAsync(["message", "delete", "--domain", "dest.test"], stdin: "n\n");
        Assert.Equal(ExitCodes.Declined, declined.ExitCode);
        Assert.Contains("[y/N]", declined.Output, StringComparison.Ordinal);

        var keys = await RunCliAsync(["keys", "--json"]);
        using (var parsed = JsonDocument.Parse(keys.Stdout))
        {
            Assert.Contains(parsed.RootElement.EnumerateArray(), k => k.GetProperty("name").GetString() == "status-page");
        }

        var smtpUsers = await RunCliAsync(["users", "smtp", "--json"]);
        Assert.Equal(0, smtpUsers.ExitCode);
        using (var parsed = JsonDocument.Parse(smtpUsers.Stdout))
        {
            Assert.Equal(JsonValueKind.Array, parsed.RootElement.ValueKind);
        }

        // The key may also come from the config file.
        var config = Path.Combine(_bench.WorkingDirectory.FullName, "cli.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new { url = $"http://127.0.0.1:{_mailmesh.HttpPort}", key = TestKeys.Admin }));
        Assert.Equal(0, (await RunCliAsAsync(["queue", "--json"], key: null, url: null, configFile: config)).ExitCode);
    }

    private Task<CliResult> RunCliAsync(IReadOnlyList<string> args, string? stdin = null) =>
        RunCliAsAsync(args, TestKeys.Admin, $"http://127.0.0.1:{_mailmesh.HttpPort}", stdin: stdin);

    private Task<CliResult> RunCliAsAsync(IReadOnlyList<string> args, string? key, string? url = "", string? configFile = null, string? stdin = null) =>
        CliProcess.RunAsync(args, new Dictionary<string, string?>
        {
            ["MAILMESH_URL"] = url == string.Empty ? $"http://127.0.0.1:{_mailmesh.HttpPort}" : url,
            ["MAILMESH_API_KEY"] = key,
            ["MAILMESH_CLI_CONFIG"] = configFile ?? Path.Combine(_bench.WorkingDirectory.FullName, "no-such-cli.json"),
        }, stdin);
}

/// <summary>What a run of the CLI printed and exited with.</summary>
internal sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public string Output => Stdout + Stderr;
}

/// <summary>Runs the real <c>mailmesh</c> (MailMesh.Cli.dll beside the tests) as a process.</summary>
internal static class CliProcess
{
    public static async Task<CliResult> RunAsync(IReadOnlyList<string> args, IReadOnlyDictionary<string, string?> environment, string? stdin = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MailMesh.Cli.dll"));
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment)
        {
            if (value is null)
            {
                info.Environment.Remove(name);
            }
            else
            {
                info.Environment[name] = value;
            }
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }
}
