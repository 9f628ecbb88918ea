using System.Net.Http.Json;
using System.Text.Json;
using MailMesh.Cli;
using MailMesh.Testing.Https;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// <c>mailmesh webhooks</c> against a running standalone (issue 12): an endpoint made with the CLI receives a real
/// event of a relayed message and a test event, its history shows both, disabled it receives nothing, removed it is
/// gone; exit codes as the other verbs.
/// </summary>
public sealed class WebhookCliTests : IAsyncLifetime
{
    private readonly RelayBench _bench = new("mailmesh-webhooks-");
    private WebhookReceiver _receiver = null!;
    private StandaloneProcess _mailmesh = null!;

    public async Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        _receiver = await WebhookReceiver.StartAsync();
        var settings = _bench.Settings();
        settings["Queue:Webhooks:RefreshInterval"] = "00:00:00.200";
        _mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);
    }

    public async Task DisposeAsync()
    {
        await _mailmesh.DisposeAsync();
        await _receiver.DisposeAsync();
        await _bench.DisposeAsync();
    }

    [Fact]
    public async Task Cli_adds_a_webhook_that_receives_events_tests_it_reads_its_history_disables_and_removes_it()
    {
        var added = await RunCliAsync(["webhooks", "add", _receiver.Url("/mail").ToString(), "--events", "Delivered", "--json"]);
        Assert.Equal(0, added.ExitCode);
        var created = JsonDocument.Parse(added.Stdout).RootElement;
        var id = created.GetProperty("webhook").GetProperty("id").GetString()!;
        Assert.StartsWith("whsec_", created.GetProperty("secret").GetString(), StringComparison.Ordinal);

        var list = await RunCliAsync(["webhooks"]);
        Assert.Equal(0, list.ExitCode);
        Assert.Contains(id, list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("whsec_", list.Stdout, StringComparison.Ordinal);

        // A real message, relayed to the sink: its Delivered event reaches the endpoint.
        var messageId = await StandaloneTests.SendAsync(_mailmesh.SmtpPort, "webhooked");
        var request = await _receiver.NextAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("Delivered", request.Headers["X-MailMesh-Event"]);
        Assert.Equal(messageId, JsonDocument.Parse(request.Body).RootElement.GetProperty("messageId").GetGuid());

        var test = await RunCliAsync(["webhooks", "test", id]);
        Assert.Equal(0, test.ExitCode);
        Assert.Contains("accepted, answered 200", test.Stdout, StringComparison.Ordinal);
        Assert.Equal("Test", (await _receiver.NextAsync()).Headers["X-MailMesh-Event"]);
        _receiver.Script.Enqueue(500);
        Assert.Equal(ExitCodes.Server, (await RunCliAsync(["webhooks", "test", id])).ExitCode);

        var history = await RunCliAsync(["webhooks", "history", id, "--json"]);
        var rows = JsonDocument.Parse(history.Stdout).RootElement.GetProperty("items").EnumerateArray()
            .Select(r => (r.GetProperty("eventType").GetString(), r.GetProperty("statusCode").GetInt32())).ToList();
        Assert.Equal([("Test", 500), ("Test", 200), ("Delivered", 200)], rows);
        var table = await RunCliAsync(["webhooks", "history", id, "--limit", "1"]);
        Assert.Contains("More: --before", table.Stdout, StringComparison.Ordinal);

        var disabled = await RunCliAsync(["webhooks", "disable", id]);
        Assert.Equal((0, $"Webhook {id} disabled."), (disabled.ExitCode, disabled.Stdout.Trim()));
        Assert.Contains("disabled already", (await RunCliAsync(["webhooks", "disable", id])).Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await RunCliAsync(["webhooks", "update", id, "--set-url", _receiver.Url("/moved").ToString(), "--events", "all"])).ExitCode);
        using (var http = TestKeys.Client(_mailmesh.HttpPort, TestKeys.Admin))
        {
            var hook = (await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/webhooks")).GetProperty("items")[0];
            Assert.Equal((_receiver.Url("/moved").ToString(), false, 0), (hook.GetProperty("url").GetString(), hook.GetProperty("enabled").GetBoolean(), hook.GetProperty("events").GetArrayLength()));
        }

        Assert.Equal(0, (await RunCliAsync(["webhooks", "remove", id])).ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await RunCliAsync(["webhooks", "remove", id])).ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await RunCliAsync(["webhooks", "history", id])).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await RunCliAsync(["webhooks", "add", "ftp://hooks.example/"])).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await RunCliAsync(["webhooks", "add", "https://hooks.example/", "--events", "Opened"])).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await RunCliAsync(["webhooks", "test"])).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await RunCliAsync(["webhooks", "frob"])).ExitCode);
        Assert.Equal(ExitCodes.Auth, (await CliProcess.RunAsync(["webhooks"], Environment(TestKeys.MessagesOnly))).ExitCode);
    }

    private Task<CliResult> RunCliAsync(IReadOnlyList<string> args) => CliProcess.RunAsync(args, Environment(TestKeys.Admin));

    private Dictionary<string, string?> Environment(string key) => new()
    {
        ["MAILMESH_URL"] = $"http://127.0.0.1:{_mailmesh.HttpPort}",
        ["MAILMESH_API_KEY"] = key,
        ["MAILMESH_CLI_CONFIG"] = Path.Combine(_bench.WorkingDirectory.FullName, "no-such-cli.json"),
    };
}
