using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MailKit.Net.Smtp;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// IP pools end to end (issue 11) in the one-process MailMesh: the sink checks which loopback alias connected and which
/// EHLO name it said, for mail placed by sender domain, by the HTTP API's <c>pool</c>, by the API key's pool and by an
/// authenticated X-MailMesh-Pool header (an unauthenticated client's header is ignored and never delivered); a pool in
/// warm-up sends its daily cap and defers the rest without counting an attempt (docs/delivery.md "IP pools").
/// </summary>
public sealed class PoolStandaloneTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly RelayBench _bench = new("mailmesh-pools-");

    public Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _bench.DisposeAsync();

    private Dictionary<string, string> Settings()
    {
        var settings = _bench.Settings();
        void Pool(string name, string address)
        {
            settings[$"Delivery:Pools:{name}:Addresses:0:Address"] = address;
            settings[$"Delivery:Pools:{name}:Addresses:0:EhloName"] = name + ".pool.test";
        }

        Pool("default", "127.0.0.41");
        Pool("news", "127.0.0.42");
        Pool("api", "127.0.0.43");
        Pool("keyed", "127.0.0.44");
        Pool("warm", "127.0.0.45");
        settings["Delivery:PoolBySenderDomain:news.origin.test"] = "news";
        settings["Ingress:Api:Keys:0:Pool"] = "keyed";

        // Two messages a day (two days listed: the test may straddle midnight UTC).
        settings["Delivery:Pools:warm:Addresses:0:WarmUp:Start"] = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        settings["Delivery:Pools:warm:Addresses:0:WarmUp:Schedule:0"] = "2";
        settings["Delivery:Pools:warm:Addresses:0:WarmUp:Schedule:1"] = "2";

        // A deferral waits an hour: what the test sees deferred stays deferred.
        settings["Queue:FirstRetryDelay"] = "01:00:00";
        return settings;
    }

    [Fact]
    public async Task The_sink_sees_each_pools_address_and_EHLO_name()
    {
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, Settings());
        using var api = TestKeys.Client(mailmesh.HttpPort, TestKeys.Submission);

        await SendSmtpAsync(mailmesh.SmtpPort, "app@origin.test", "plain@dest.test", pool: "api");
        await SendSmtpAsync(mailmesh.SmtpPort, "list@news.origin.test", "news@dest.test");
        (await api.PostAsJsonAsync("/api/v1/messages", new { from = "app@origin.test", to = "field@dest.test", text = "pool field", pool = "api" })).EnsureSuccessStatusCode();
        (await api.PostAsJsonAsync("/api/v1/messages", new { from = "app@origin.test", to = "key@dest.test", text = "key's pool" })).EnsureSuccessStatusCode();
        (await PostRawAsync(api, "header@dest.test", "warm")).EnsureSuccessStatusCode();

        var messages = await _bench.Sink.WaitForMessagesAsync(5, Patience);
        var seen = messages.ToDictionary(m => m.Recipients[0], m => (m.ClientAddress!.ToString(), m.Helo));

        // The unauthenticated client's X-MailMesh-Pool was ignored: the default pool.
        Assert.Equal(("127.0.0.41", "default.pool.test"), seen["plain@dest.test"]);
        Assert.Equal(("127.0.0.42", "news.pool.test"), seen["news@dest.test"]);
        Assert.Equal(("127.0.0.43", "api.pool.test"), seen["field@dest.test"]);
        Assert.Equal(("127.0.0.44", "keyed.pool.test"), seen["key@dest.test"]);
        Assert.Equal(("127.0.0.45", "warm.pool.test"), seen["header@dest.test"]);
        Assert.All(messages, m => Assert.DoesNotContain("X-MailMesh-Pool", m.DataText, StringComparison.OrdinalIgnoreCase));

        // An invalid pool name in the API is a 400 naming the member.
        var invalid = await api.PostAsJsonAsync("/api/v1/messages", new { from = "app@origin.test", to = "x@dest.test", text = "x", pool = "no spaces" });
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("/pool", await invalid.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_pool_in_warm_up_sends_its_daily_cap_and_defers_the_rest_without_an_attempt()
    {
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, Settings());
        using var api = TestKeys.Client(mailmesh.HttpPort, TestKeys.Submission);
        using var admin = TestKeys.Client(mailmesh.HttpPort, TestKeys.Admin);

        var ids = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            var response = await api.PostAsJsonAsync("/api/v1/messages", new { from = "app@origin.test", to = $"w{i}@dest.test", text = "warm-up", pool = "warm" });
            response.EnsureSuccessStatusCode();
            ids.Add((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
        }

        // Two are sent from the warm-up address; the third waits, its attempt not counted.
        var deferred = new List<JsonElement>();
        using (var timeout = new CancellationTokenSource(Patience))
        {
            while (deferred.Count != 1 || _bench.Sink.Messages.Count != 2)
            {
                deferred.Clear();
                foreach (var id in ids)
                {
                    var recipient = (await admin.GetFromJsonAsync<JsonElement>($"/api/v1/messages/{id}", timeout.Token)).GetProperty("recipients")[0];
                    if (recipient.GetProperty("state").GetString() == "deferred")
                    {
                        deferred.Add(recipient);
                    }
                }

                // Polling the status API (no event to wait on from outside the process), bounded by Patience.
                await Task.Delay(100, timeout.Token);
            }
        }

        Assert.All(_bench.Sink.Messages, m => Assert.Equal(("127.0.0.45", "warm.pool.test"), (m.ClientAddress!.ToString(), m.Helo)));
        var waiting = Assert.Single(deferred);
        Assert.Equal("4.7.0", waiting.GetProperty("lastEnhancedCode").GetString());
        Assert.Contains("pool warm-up cap reached", waiting.GetProperty("lastReplyText").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, waiting.GetProperty("attempts").GetInt32());
    }

    [Fact]
    public async Task A_pool_address_that_is_not_local_stops_start_up_naming_the_key()
    {
        var settings = Settings();
        settings["Delivery:Pools:news:Addresses:0:Address"] = "192.0.2.77";
        var (exitCode, output) = await StandaloneProcess.RunToExitAsync(_bench.WorkingDirectory.FullName, settings);
        Assert.Equal(2, exitCode);
        Assert.Contains("Delivery:Pools:news:Addresses:0:Address: 192.0.2.77 is not a local address", output, StringComparison.Ordinal);
    }

    private static async Task SendSmtpAsync(int port, string from, string to, string? pool = null)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = "pools";
        if (pool is not null)
        {
            message.Headers.Add("X-MailMesh-Pool", pool);
        }

        message.Body = new TextPart("plain") { Text = "pools\r\n" };
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, MailKit.Security.SecureSocketOptions.None);
        await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
    }

    private static Task<HttpResponseMessage> PostRawAsync(HttpClient api, string to, string pool)
    {
        var raw = $"From: app@origin.test\r\nTo: {to}\r\nX-MailMesh-Pool: {pool}\r\nSubject: raw\r\n\r\nraw with a pool header\r\n";
        var content = new ByteArrayContent(Encoding.ASCII.GetBytes(raw));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("message/rfc822");
        return api.PostAsync(new Uri("/api/v1/messages", UriKind.Relative), content);
    }
}
