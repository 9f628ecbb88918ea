using System.Text;
using MailKit.Net.Smtp;
using MailMesh.Testing.Hosting;
using MailMesh.Testing.Scanning;
using MimeKit;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// Spam and virus scanning (issue 10) in the distributed mode: Ingress (where Policy's content checks run) asks a real
/// rspamd and clamd started by the test; GTUBE and EICAR are refused at the end of DATA, a clean message goes through
/// Queue and Delivery to the destination with the scanners' headers. The client is not a relay client (relay networks
/// are elsewhere), as an MX's inbound mail is not.
/// </summary>
public sealed class ScanningDistributedTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly ScannerFixture _scanners = new();

    public Task InitializeAsync() => _scanners.InitializeAsync();

    public Task DisposeAsync() => _scanners.DisposeAsync();

    [Fact]
    public async Task Gtube_and_Eicar_are_refused_and_a_clean_message_is_delivered_with_the_scanners_headers()
    {
        await using var mesh = await Mesh.CreateAsync();
        mesh.Settings["Policy:RelayNetworks"] = "192.0.2.0/24";
        mesh.Settings["Policy:LocalDomains"] = Mesh.DestinationDomain;
        mesh.Settings["Policy:Rspamd:Enabled"] = "true";
        mesh.Settings["Policy:Rspamd:Url"] = _scanners.Rspamd.Url.ToString();
        mesh.Settings["Policy:Clamd:Enabled"] = "true";
        mesh.Settings["Policy:Clamd:Address"] = _scanners.Clamd.Address;
        await mesh.StartAsync();

        var spam = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mesh, "GTUBE", new TextPart("plain") { Text = RspamdServer.Gtube + "\r\n" }));
        Assert.Equal(550, (int)spam.StatusCode);
        Assert.Contains("5.7.1", spam.Message, StringComparison.Ordinal);
        Assert.Contains("Gtube pattern", spam.Message, StringComparison.Ordinal);

        var attachment = new Multipart("mixed")
        {
            new TextPart("plain") { Text = "See the attachment.\r\n" },
            new MimePart("application", "octet-stream")
            {
                Content = new MimeContent(new MemoryStream(Encoding.ASCII.GetBytes(ClamdServer.Eicar))),
                ContentDisposition = new ContentDisposition(ContentDisposition.Attachment) { FileName = "eicar.com" },
                ContentTransferEncoding = ContentEncoding.Base64,
            },
        };
        var virus = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mesh, "file", attachment));
        Assert.Equal(550, (int)virus.StatusCode);
        Assert.Contains("virus found: " + ClamdServer.SignatureName, virus.Message, StringComparison.Ordinal);

        await SendAsync(mesh, "Lunch on Friday", new TextPart("plain") { Text = "Hi Bob,\r\n\r\nlunch on Friday at noon?\r\n\r\nAlice\r\n" });
        var delivered = (await mesh.Destination.WaitForMessagesAsync(1, Patience)).Single();
        var text = delivered.DataText;
        Assert.Contains("\r\nX-Spam-Status: No, score=", "\r\n" + text, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Virus-Status: Clean (clamd)\r\n", text, StringComparison.Ordinal);
        Assert.Contains("Subject: Lunch on Friday", text, StringComparison.Ordinal);
    }

    private static async Task SendAsync(DistributedMesh mesh, string subject, MimeEntity body)
    {
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Alice", "alice@" + Mesh.SenderDomain));
        message.To.Add(new MailboxAddress("Bob", "bob@" + Mesh.DestinationDomain));
        message.Subject = subject;
        message.Date = DateTimeOffset.UtcNow;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(Mesh.SenderDomain);
        message.Body = body;
        using var client = new SmtpClient();
        await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
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
