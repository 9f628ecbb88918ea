using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using MailKit.Net.Smtp;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Smtp;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// The zero-setup MailMesh: one process, SQLite under the working directory. A message handed over SMTP is found in
/// DNS and delivered; a message that got 250 survives a crash (SIGKILL) and is delivered after the restart.
/// </summary>
public sealed class StandaloneTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly RelayBench _bench = new("mailmesh-standalone-");

    public Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _bench.DisposeAsync();

    private Dictionary<string, string> Settings() => _bench.Settings();

    [Fact]
    public async Task Delivers_over_SMTP_and_reports_where_the_message_is()
    {
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, Settings());

        var id = await SendAsync(mailmesh.SmtpPort, "hello");
        var delivered = await _bench.Sink.WaitForMessagesAsync(1, Patience);
        Assert.Equal(["user@dest.test"], delivered[0].Recipients);
        Assert.Contains("Subject: hello", delivered[0].DataText, StringComparison.Ordinal);

        // Data lives under ./data/ of the working directory, as the README says.
        Assert.True(File.Exists(Path.Combine(_bench.WorkingDirectory.FullName, "data", "mailmesh.db")));

        using var http = TestKeys.Client(mailmesh.HttpPort, TestKeys.Admin);
        var status = await WaitForAsync(async () =>
        {
            var json = await http.GetFromJsonAsync<JsonElement>($"/api/v1/messages/{id}");
            return json.GetProperty("recipients")[0].GetProperty("state").GetString() is "delivered" or "Delivered" ? json : (JsonElement?)null;
        });
        Assert.Equal(id.ToString(), status.GetProperty("id").GetString());
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync(new Uri($"/api/v1/messages/{Guid.NewGuid()}", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task A_message_that_got_250_survives_a_crash_and_is_delivered_after_restart()
    {
        // The destination defers everything, so the message is still queued when the process is killed.
        _bench.Sink.RecipientReplies["user@dest.test"] = "451 4.3.0 not now";
        var first = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, Settings());
        await SendAsync(first.SmtpPort, "survivor");
        await first.CrashAsync();
        await first.DisposeAsync();
        Assert.Empty(_bench.Sink.Messages);

        _bench.Sink.RecipientReplies.Clear();
        await using var second = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, Settings());
        var delivered = await _bench.Sink.WaitForMessagesAsync(1, Patience);
        Assert.Contains("Subject: survivor", delivered[0].DataText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Queue:MaxAge", "-00:00:01")]
    [InlineData("Dns:Servers", "not-an-address")]
    [InlineData("Delivery:Port", "0")]
    [InlineData("Ingress:Listen", "nonsense")]
    [InlineData("Policy:RelayNetworks", "10.0.0.0/99")]
    [InlineData("Ingress:MaxMessageSize", "huge")]
    [InlineData("Admin:ApiKeys:0:Scopes", "everything")]
    [InlineData("Policy:MailboxDomains", "bad!domain")]
    [InlineData("Mailbox:Users:0:Address", "not-an-address")]
    [InlineData("Mailbox:Users:0:QuotaBytes", "-1")]
    [InlineData("Mailbox:Aliases:0:Target", "nobody")]
    [InlineData("Delivery:BounceRules:Files:0", "/nonexistent/bounce-rules.json")]
    [InlineData("Queue:Retry:Classes:Throttled:FirstRetryDelay", "-00:00:01")]
    [InlineData("Queue:SuppressBounceClasses:0", "Spam")]
    [InlineData("ReturnPath:Domain", "bad domain!")]
    public async Task A_bad_setting_stops_start_up_with_a_message_naming_the_key(string key, string value)
    {
        var settings = Settings();
        settings[key] = value;
        var (exitCode, output) = await StandaloneProcess.RunToExitAsync(_bench.WorkingDirectory.FullName, settings);
        Assert.Equal(2, exitCode);
        Assert.Contains("configuration error", output, StringComparison.Ordinal);
        Assert.Contains(key, output, StringComparison.Ordinal);
    }

    internal static async Task<Guid> SendAsync(int port, string subject)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("app@origin.test"));
        message.To.Add(MailboxAddress.Parse("user@dest.test"));
        message.Subject = subject;
        message.Body = new TextPart("plain") { Text = "standalone\r\n" };
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, MailKit.Security.SecureSocketOptions.None);
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
        return Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
    }

    internal static async Task<JsonElement> WaitForAsync(Func<Task<JsonElement?>> probe)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            if (await probe() is { } result)
            {
                return result;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("condition not reached");
            }

            await Task.Delay(100);
        }
    }
}
