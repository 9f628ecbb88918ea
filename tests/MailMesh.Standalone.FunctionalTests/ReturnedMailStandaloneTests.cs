using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MailKit.Net.Smtp;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Asynchronous bounces end to end (issue 11): with ReturnPath:Domain set, mail leaves with a VERP return path; a DSN
/// and a feedback report sent back to it over SMTP are matched to the message and recipient (an unknown user suppressed
/// as a bounce, a complaint as a complaint), and a forged return path is refused at RCPT.
/// </summary>
public sealed class ReturnedMailStandaloneTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly RelayBench _bench = new("mailmesh-returned-");

    public Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _bench.DisposeAsync();

    [Fact]
    public async Task A_DSN_and_a_complaint_to_the_return_path_are_applied_to_the_original_recipient()
    {
        var settings = _bench.Settings();
        settings["ReturnPath:Domain"] = "bounce.test";
        settings["ReturnPath:Secret"] = "a-test-secret-of-at-least-32-characters";
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);
        using var http = TestKeys.Client(mailmesh.HttpPort, TestKeys.Admin);

        await SendAsync(mailmesh.SmtpPort, Message("app@origin.test", "user@dest.test", "first"), "app@origin.test", "user@dest.test");
        await SendAsync(mailmesh.SmtpPort, Message("app@origin.test", "other@dest.test", "second"), "app@origin.test", "other@dest.test");
        var sent = await _bench.Sink.WaitForMessagesAsync(2, Patience);
        var returnPaths = sent.ToDictionary(m => m.Recipients.Single(), m => m.MailFrom);
        Assert.All(returnPaths.Values, from => Assert.Matches("^bounces\\+[0-9a-f]{52}@bounce\\.test$", from));

        // The destination accepted, then bounced later: a DSN to the return path.
        var dsn = await SendAsync(mailmesh.SmtpPort, Load(Dsn(returnPaths["user@dest.test"], "user@dest.test")), "MAILER-DAEMON@dest.test", returnPaths["user@dest.test"]);
        // The other recipient complained: an ARF report to its return path.
        await SendAsync(mailmesh.SmtpPort, Load(Arf(returnPaths["other@dest.test"], "other@dest.test")), "abuse@dest.test", returnPaths["other@dest.test"]);

        Assert.Equal("bounce", (await WaitForSuppressionAsync(http, "user@dest.test")).GetProperty("source").GetString());
        Assert.Equal("complaint", (await WaitForSuppressionAsync(http, "other@dest.test")).GetProperty("source").GetString());

        // The returned mail itself is done (consumed, not delivered anywhere).
        await WaitForAsync(async () =>
        {
            var status = await http.GetFromJsonAsync<JsonElement>($"/api/v1/messages/{dsn}");
            return status.GetProperty("recipients")[0].GetProperty("state").GetString() == "delivered" ? status : null;
        });
        Assert.Equal(2, _bench.Sink.Messages.Count);

        // A return path MailMesh did not issue is refused at RCPT (no backscatter).
        var forged = "bounces+" + new string('0', 52) + "@bounce.test";
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mailmesh.SmtpPort, Load(Dsn(forged, "user@dest.test")), "MAILER-DAEMON@dest.test", forged));
        Assert.Equal(550, (int)refused.StatusCode);
    }

    private static MimeMessage Message(string from, string to, string subject)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = subject;
        message.Body = new TextPart("plain") { Text = "returned mail test\r\n" };
        return message;
    }

    private static MimeMessage Load(string text) => MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(text)));

    private static string Dsn(string to, string recipient) =>
        $"From: MAILER-DAEMON@dest.test\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        + "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n"
        + "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        + "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.test\r\n\r\n"
        + $"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        + "Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach does not exist\r\n\r\n--b1--\r\n";

    private static string Arf(string to, string recipient) =>
        $"From: abuse@dest.test\r\nTo: {to}\r\nSubject: Abuse report\r\nMIME-Version: 1.0\r\n"
        + "Content-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r\n\r\n"
        + "--b2\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        + $"--b2\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: Test/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <{recipient}>\r\n\r\n"
        + $"--b2\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: app@origin.test\r\nTo: {recipient}\r\nSubject: second\r\n\r\n--b2--\r\n";

    private static async Task<Guid> SendAsync(int port, MimeMessage message, string sender, string recipient)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, MailKit.Security.SecureSocketOptions.None);
        var reply = await client.SendAsync(message, MailboxAddress.Parse(sender), [MailboxAddress.Parse(recipient)]);
        await client.DisconnectAsync(quit: true);
        return Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
    }

    private static Task<JsonElement> WaitForSuppressionAsync(HttpClient http, string address) => WaitForAsync(async () =>
    {
        using var response = await http.GetAsync(new Uri($"/api/v1/suppressions/{address}", UriKind.Relative));
        return response.StatusCode == HttpStatusCode.OK ? await response.Content.ReadFromJsonAsync<JsonElement>() : null;
    });

    private static async Task<JsonElement> WaitForAsync(Func<Task<JsonElement?>> probe)
    {
        using var timeout = new CancellationTokenSource(Patience);
        while (true)
        {
            if (await probe() is { } result)
            {
                return result;
            }

            // Polling the admin API (no event to wait on from outside the process), bounded by Patience.
            await Task.Delay(100, timeout.Token);
        }
    }
}
