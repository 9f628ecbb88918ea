using System.Text;
using MailKit.Net.Smtp;
using MailMesh.Testing.Scanning;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Spam and virus scanning (issue 10) over SMTP into the real process, with a real rspamd and clamd started by the test:
/// the client (127.0.0.1) is not a relay client here, so mail for the local domain is scanned at the end of DATA.
/// DNSBL at connect with a list on the test DNS server that lists 127.0.0.1.
/// </summary>
public sealed class ScanningStandaloneTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly RelayBench _bench = new("mailmesh-scan-");
    private readonly ScannerFixture _scanners = new();

    public async Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1")
            .AddAddress("1.0.0.127.bl.test", "127.0.0.2");
        await _scanners.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        await _scanners.DisposeAsync();
        await _bench.DisposeAsync();
    }

    private Dictionary<string, string> Settings()
    {
        var settings = _bench.Settings();
        settings["Policy:RelayNetworks"] = "192.0.2.0/24";
        settings["Policy:LocalDomains"] = "dest.test";
        settings["Policy:Rspamd:Enabled"] = "true";
        settings["Policy:Rspamd:Url"] = _scanners.Rspamd.Url.ToString();
        settings["Policy:Clamd:Enabled"] = "true";
        settings["Policy:Clamd:Address"] = _scanners.Clamd.Address;
        return settings;
    }

    [Fact]
    public async Task Gtube_and_Eicar_are_refused_with_5_7_1_and_a_clean_message_is_delivered_with_the_scanners_headers()
    {
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, Settings());

        var spam = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mailmesh.SmtpPort, "GTUBE",
            new TextPart("plain") { Text = "Test:\r\n" + RspamdServer.Gtube + "\r\n" }));
        Assert.Equal(550, (int)spam.StatusCode);
        Assert.Contains("5.7.1", spam.Message, StringComparison.Ordinal);
        Assert.Contains("Gtube pattern", spam.Message, StringComparison.Ordinal);

        var virus = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mailmesh.SmtpPort, "file", EicarBody()));
        Assert.Equal(550, (int)virus.StatusCode);
        Assert.Contains("virus found: " + ClamdServer.SignatureName, virus.Message, StringComparison.Ordinal);

        await SendAsync(mailmesh.SmtpPort, "Lunch on Friday", new TextPart("plain") { Text = "Hi Bob,\r\n\r\nlunch on Friday at noon?\r\n\r\nAlice\r\n" });
        var delivered = await _bench.Sink.WaitForMessagesAsync(1, Patience);
        var text = Assert.Single(delivered).DataText;
        Assert.Contains("\r\nX-Spam-Status: No, score=", "\r\n" + text, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Virus-Status: Clean (clamd)\r\n", text, StringComparison.Ordinal);
        Assert.Contains("Subject: Lunch on Friday", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rspamd_down_is_a_451_4_7_1()
    {
        var settings = Settings();
        settings["Policy:Rspamd:Url"] = $"http://127.0.0.1:{MailMesh.Testing.Infrastructure.LoopbackPort.Free()}/";
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);

        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mailmesh.SmtpPort, "hello", new TextPart("plain") { Text = "hello\r\n" }));
        Assert.Equal(451, (int)refused.StatusCode);
        Assert.Contains("4.7.1", refused.Message, StringComparison.Ordinal);
        Assert.Empty(_bench.Sink.Messages);
    }

    [Fact]
    public async Task A_client_on_a_DNS_block_list_gets_a_554_greeting()
    {
        var settings = Settings();
        settings["Policy:Dnsbl:Enabled"] = "true";
        settings["Policy:Dnsbl:Zones:0:Zone"] = "bl.test";
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);

        using var client = new SmtpClient();
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => client.ConnectAsync("127.0.0.1", mailmesh.SmtpPort, MailKit.Security.SecureSocketOptions.None));
        Assert.Contains("blocked using bl.test", refused.Message, StringComparison.Ordinal);
    }

    private static MimeEntity EicarBody()
    {
        var multipart = new Multipart("mixed") { new TextPart("plain") { Text = "See the attachment.\r\n" } };
        multipart.Add(new MimePart("application", "octet-stream")
        {
            Content = new MimeContent(new MemoryStream(Encoding.ASCII.GetBytes(ClamdServer.Eicar))),
            ContentDisposition = new ContentDisposition(ContentDisposition.Attachment) { FileName = "eicar.com" },
            ContentTransferEncoding = ContentEncoding.Base64,
        });
        return multipart;
    }

    private static async Task SendAsync(int port, string subject, MimeEntity body)
    {
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Alice", "alice@origin.test"));
        message.To.Add(new MailboxAddress("Bob", "bob@dest.test"));
        message.Subject = subject;
        message.Date = DateTimeOffset.UtcNow;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId("origin.test");
        message.Body = body;
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, MailKit.Security.SecureSocketOptions.None);
        try
        {
            await client.SendAsync(message);
        }
        finally
        {
            await client.DisconnectAsync(quit: true);
        }
    }
}
