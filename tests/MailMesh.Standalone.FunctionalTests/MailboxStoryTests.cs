using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Infrastructure;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Issue 9's whole story in one test: a message handed over SMTP to one MailMesh (A) is found by MX in DNS, delivered to
/// a second MailMesh (B) that is final destination for the recipient's domain, and fetched there by its user over IMAP
/// and over POP3; the bytes fetched are B's final-delivery lines, B's and A's <c>Received</c> lines, then exactly the
/// bytes the SMTP client sent.
/// </summary>
public sealed class MailboxStoryTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly DirectoryInfo _a = Directory.CreateTempSubdirectory("mailmesh-story-a-");
    private readonly DirectoryInfo _b = Directory.CreateTempSubdirectory("mailmesh-story-b-");
    private TestDnsServer _dns = null!;

    public Task InitializeAsync()
    {
        _dns = TestDnsServer.Start();
        // Delivery:Port is the port for every exchanger, so the MX's address is B's only by being 127.0.0.1.
        _dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        _dns.Dispose();
        _a.Delete(recursive: true);
        _b.Delete(recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Smtp_to_one_MailMesh_is_delivered_by_MX_to_another_and_fetched_there_over_IMAP_and_POP3()
    {
        var pop3Port = LoopbackPort.Free();
        var imapPort = LoopbackPort.Free();
        var b = new Dictionary<string, string>
        {
            ["Dns:Servers"] = _dns.EndPoint.ToString(),
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Ingress:HostName"] = "b.dest.test",
            ["Policy:MailboxDomains"] = "dest.test",
            ["Mailbox:HostName"] = "b.dest.test",
            ["Mailbox:Users:0:Address"] = "bob@dest.test",
            ["Mailbox:Users:0:PasswordHash"] = PasswordHash.Create("bob-password", PasswordHash.MinIterations),
            ["Mailbox:Pop3Listen"] = $"127.0.0.1:{pop3Port}",
            ["Mailbox:ImapListen"] = $"127.0.0.1:{imapPort}",
        };
        TestKeys.AddTo(b);
        await using var mailmeshB = await StandaloneProcess.StartAsync(_b.FullName, b);

        var a = new Dictionary<string, string>
        {
            ["Dns:Servers"] = _dns.EndPoint.ToString(),
            ["Delivery:Port"] = mailmeshB.SmtpPort.ToString(CultureInfo.InvariantCulture),
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Ingress:HostName"] = "a.origin.test",
        };
        TestKeys.AddTo(a);
        await using var mailmeshA = await StandaloneProcess.StartAsync(_a.FullName, a);

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("app@origin.test"));
        message.To.Add(MailboxAddress.Parse("bob@dest.test"));
        message.Subject = "the whole story";
        message.Body = new TextPart("plain") { Text = "from A, by MX to B, kept until bob logs in\r\n.a dot line\r\n" };

        // Bob is in his INBOX, idle, before the message is sent: the delivery wakes him (no polling).
        using var imap = await MailboxFetch.IdleInInboxAsync(imapPort, "b.dest.test", "bob@dest.test", "bob-password");

        using (var smtp = new SmtpClient())
        {
            await smtp.ConnectAsync("127.0.0.1", mailmeshA.SmtpPort, SecureSocketOptions.None);
            await smtp.SendAsync(message);
            await smtp.DisconnectAsync(quit: true);
        }

        // What MailKit put on the wire after DATA (before dot-stuffing): the message as prepared, CRLF line ends.
        var sent = Serialize(message);

        var viaImap = await imap.WaitForFirstMessageAsync(Patience, () => $"A:\n{mailmeshA.Output}\nB:\n{mailmeshB.Output}");
        var viaPop3 = await MailboxFetch.RetrieveOnlyMessageOverPop3Async(pop3Port, "b.dest.test", "bob@dest.test", "bob-password", delete: false);

        Assert.Equal(viaImap, viaPop3);
        Assert.True(viaImap.Length > sent.Length, Encoding.UTF8.GetString(viaImap));
        Assert.Equal(sent, viaImap[^sent.Length..]);

        // In front of the sent bytes, newest first (RFC 5321 §4.4): B's final delivery (Return-Path, Delivered-To, its
        // Received), B's Ingress Received for the hop from A, A's Ingress Received for the hop from the client.
        var trace = Encoding.UTF8.GetString(viaImap[..^sent.Length]);
        Assert.Matches(new Regex(
            @"\AReturn-Path: <app@origin\.test>\r\n" +
            @"Delivered-To: bob@dest\.test\r\n" +
            @"Received: by b\.dest\.test \(MailMesh\) with local id [0-9a-f]{32}\r\n\tfor <bob@dest\.test>; [^\r\n]+\r\n" +
            @"Received: from [^\r\n]+ \(\[127\.0\.0\.1\]\)\r\n\tby b\.dest\.test \(MailMesh\) with [A-Z]+ id [^\r\n]+\r\n\tfor <bob@dest\.test>; [^\r\n]+\r\n" +
            @"Received: from [^\r\n]+ \(\[127\.0\.0\.1\]\)\r\n\tby a\.origin\.test \(MailMesh\) with [A-Z]+ id [^\r\n]+\r\n\tfor <bob@dest\.test>; [^\r\n]+\r\n\z",
            RegexOptions.None,
            Patience), trace);
    }

    private static byte[] Serialize(MimeMessage message)
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using var buffer = new MemoryStream();
        message.WriteTo(options, buffer);
        return buffer.ToArray();
    }
}
