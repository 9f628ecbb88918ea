using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MailKit.Net.Smtp;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Bounce classification end to end (issue 11) in the one-process MailMesh: a destination answers RCPT with scripted
/// real-world replies, and the message's status shows each reply's class, a throttled recipient retried on its class's
/// schedule (the global one is an hour) and delivered, an unknown user suppressed and a spam block not.
/// </summary>
public sealed class BounceClassStandaloneTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly RelayBench _bench = new("mailmesh-bounce-");

    public Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _bench.DisposeAsync();

    [Fact]
    public async Task Replies_are_classified_and_the_class_decides_retry_and_suppression()
    {
        _bench.Sink.RecipientReplies["gone@dest.test"] = "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address.";
        _bench.Sink.RecipientReplies["slow@dest.test"] = "421 4.7.0 [127.0.0.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.";
        _bench.Sink.RecipientReplies["blocked@dest.test"] = "550 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org";
        var settings = _bench.Settings();
        settings["Queue:FirstRetryDelay"] = "01:00:00";
        settings["Queue:Retry:Classes:Throttled:FirstRetryDelay"] = "00:00:01";
        settings["Queue:Retry:Classes:Throttled:MaxRetryDelay"] = "00:00:01";
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);
        using var http = TestKeys.Client(mailmesh.HttpPort, TestKeys.Admin);

        var id = await SendAsync(mailmesh.SmtpPort, "gone@dest.test", "slow@dest.test", "blocked@dest.test");

        var first = await WaitForAsync(http, id, s => Recipient(s, "slow@dest.test").GetProperty("state").GetString() == "deferred"
            && Recipient(s, "gone@dest.test").GetProperty("state").GetString() == "bounced"
            && Recipient(s, "blocked@dest.test").GetProperty("state").GetString() == "bounced");
        Assert.Equal("Throttled", Recipient(first, "slow@dest.test").GetProperty("lastBounceClass").GetString());
        Assert.Equal("InvalidRecipient", Recipient(first, "gone@dest.test").GetProperty("lastBounceClass").GetString());
        Assert.Equal("SpamBlock", Recipient(first, "blocked@dest.test").GetProperty("lastBounceClass").GetString());

        // The admin API finds the message by a recipient's class, and shows it per attempt.
        var byClass = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/messages?class=SpamBlock,QuotaIssues");
        Assert.Equal(id, Assert.Single(byClass.GetProperty("items").EnumerateArray()).GetProperty("id").GetGuid());
        Assert.Empty((await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/messages?class=QuotaIssues")).GetProperty("items").EnumerateArray());
        var detail = await http.GetFromJsonAsync<JsonElement>($"/api/v1/admin/messages/{id}");
        var gone = detail.GetProperty("recipients").EnumerateArray().Single(r => r.GetProperty("address").GetString() == "gone@dest.test");
        Assert.Equal("InvalidRecipient", gone.GetProperty("lastBounceClass").GetString());
        Assert.Equal("InvalidRecipient", Assert.Single(gone.GetProperty("history").EnumerateArray()).GetProperty("bounceClass").GetString());

        // The unknown user is suppressed (written just after the states are committed, so waited for), the spam block is
        // not the address's fault.
        using (var timeout = new CancellationTokenSource(Patience))
        {
            while ((await http.GetAsync(new Uri("/api/v1/suppressions/gone@dest.test", UriKind.Relative), timeout.Token)).StatusCode != HttpStatusCode.OK)
            {
                await Task.Delay(100, timeout.Token);
            }
        }

        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri("/api/v1/suppressions/blocked@dest.test", UriKind.Relative))).StatusCode);

        // The throttled recipient comes back on the Throttled schedule (one second), not the global hour.
        _bench.Sink.RecipientReplies.Clear();
        var delivered = await _bench.Sink.WaitForMessagesAsync(1, Patience);
        Assert.Equal(["slow@dest.test"], delivered[0].Recipients);
        var final = await WaitForAsync(http, id, s => Recipient(s, "slow@dest.test").GetProperty("state").GetString() == "delivered");
        var slow = Recipient(final, "slow@dest.test");
        Assert.Equal(JsonValueKind.Null, slow.TryGetProperty("lastBounceClass", out var last) ? last.ValueKind : JsonValueKind.Null);
        var history = slow.GetProperty("history").EnumerateArray().ToList();
        Assert.True(history.Count >= 2);
        Assert.All(history[..^1], h => Assert.Equal("Throttled", h.GetProperty("bounceClass").GetString()));
    }

    private static JsonElement Recipient(JsonElement status, string address) =>
        status.GetProperty("recipients").EnumerateArray().Single(r => r.GetProperty("address").GetString() == address);

    private static async Task<Guid> SendAsync(int port, params string[] recipients)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("app@origin.test"));
        foreach (var recipient in recipients)
        {
            message.To.Add(MailboxAddress.Parse(recipient));
        }

        message.Subject = "classes";
        message.Body = new TextPart("plain") { Text = "bounce classes\r\n" };
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, MailKit.Security.SecureSocketOptions.None);
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
        return Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
    }

    private static async Task<JsonElement> WaitForAsync(HttpClient http, Guid id, Func<JsonElement, bool> condition)
    {
        using var timeout = new CancellationTokenSource(Patience);
        while (true)
        {
            var status = await http.GetFromJsonAsync<JsonElement>($"/api/v1/messages/{id}", timeout.Token);
            if (condition(status))
            {
                return status;
            }

            // Polling the status API (no event to wait on from outside the process), bounded by Patience.
            await Task.Delay(100, timeout.Token);
        }
    }
}
