using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Issue 9's whole story in one test: a message handed over SMTP to one MailMesh (A) is found by MX in DNS, delivered to
/// a second MailMesh (B) that is final destination for the recipient's domain, and fetched there by its user over IMAP
/// and over POP3; the bytes fetched are B's final-delivery lines, B's and A's <c>Received</c> lines, then exactly the
/// bytes the SMTP client sent.
/// </summary>
public sealed class MailboxStoryTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly MailboxWorkspace _workspace = new();

    public MailboxStoryTests()
    {
        // Delivery:Port is the port for every exchanger, so the MX's address is B's only by being 127.0.0.1.
        _workspace.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
    }

    public void Dispose() => _workspace.Dispose();

    [Fact]
    public async Task Smtp_to_one_MailMesh_is_delivered_by_MX_to_another_and_fetched_there_over_IMAP_and_POP3()
    {
        var (pop3Port, imapPort, b) = _workspace.Destination("dest.test", "b.dest.test", "bob@dest.test", "bob-password");
        b["Ingress:HostName"] = "b.dest.test";
        await using var mailmeshB = await StandaloneProcess.StartAsync(_workspace.NewDirectory("mailmesh-story-b-"), b);

        var a = new Dictionary<string, string>
        {
            ["Dns:Servers"] = _workspace.Dns.EndPoint.ToString(),
            ["Delivery:Port"] = mailmeshB.SmtpPort.ToString(CultureInfo.InvariantCulture),
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Ingress:HostName"] = "a.origin.test",
        };
        TestKeys.AddTo(a);
        await using var mailmeshA = await StandaloneProcess.StartAsync(_workspace.NewDirectory("mailmesh-story-a-"), a);

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
