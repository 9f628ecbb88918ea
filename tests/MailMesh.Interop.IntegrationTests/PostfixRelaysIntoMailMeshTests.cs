using System.Text;
using System.Text.RegularExpressions;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailMesh.Storage;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Postfix;
using MailMesh.Testing.Smtp;
using MimeKit;

namespace MailMesh.Interop.IntegrationTests;

/// <summary>
/// Postfix relays into MailMesh: a private Postfix instance whose relayhost is MailMesh's SMTP port (STARTTLS when
/// offered, Postfix's smtp_tls_security_level=may) takes mail from sendmail(1) and from SMTP clients; MailMesh
/// receives it from Postfix's smtp client and delivers it to the destination's MX (an SMTP sink).
/// </summary>
public sealed partial class PostfixRelaysIntoMailMeshTests(PostfixRelaysIntoMailMeshTests.Fixture fixture)
    : IClassFixture<PostfixRelaysIntoMailMeshTests.Fixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Mail_from_sendmail_is_relayed_by_Postfix_over_STARTTLS_and_delivered_by_MailMesh_byte_for_byte()
    {
        var marker = Marker();
        // 8-bit UTF-8 text, lines that need dot-stuffing on every hop (RFC 5321 §4.5.2), a line of one dot (sendmail -i
        // keeps it as content), a long line and trailing white space.
        var body = ".leading dot\r\n..two dots\r\n.\r\ncaf\u00e9 \u00fcber na\u00efve \u2713\r\n" + new string('x', 900) + "\r\ntrailing space \r\nend\r\n";
        var message = Encoding.UTF8.GetBytes(
            "From: Alice <alice@origin.test>\r\n" +
            "To: bob@dest.test\r\n" +
            "Subject: relayed by Postfix\r\n" +
            "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n" +
            $"Message-ID: <{marker}>\r\n" +
            "MIME-Version: 1.0\r\n" +
            "Content-Type: text/plain; charset=utf-8\r\n" +
            "Content-Transfer-Encoding: 8bit\r\n" +
            "\r\n" + body);

        await fixture.Postfix.SendmailAsync("alice@origin.test", ["bob@dest.test"], message);

        var delivered = await fixture.Destination.WaitForMessageAsync(marker, Patience);
        Assert.Equal("alice@origin.test", delivered.MailFrom);
        Assert.Equal(["bob@dest.test"], delivered.Recipients);

        // What MailMesh delivered is what was handed to Postfix, below the trace headers the two MTAs prepended
        // (RFC 5321 §4.4): MailMesh's, then Postfix's from pickup (sendmail is a local submission).
        Assert.True(delivered.Data.AsSpan().EndsWith(message), "the delivered message must end with the submitted bytes:\n" + delivered.DataText);
        var trace = ReceivedHeaders(delivered);
        Assert.Equal(2, trace.Count);
        Assert.Matches(@"^Received: from postfix-relay\.test \(\[127\.0\.0\.1\]\)\s+by mailmesh\.test \(MailMesh\) with ESMTPS ", trace[0]);
        Assert.Matches(@"^Received: by postfix-relay\.test \(Postfix, from userid 0\)", trace[1]);

        // Postfix's side: TLS was negotiated with MailMesh and the message was accepted, under MailMesh's queue id.
        await fixture.Postfix.WaitForLogLineAsync(TlsToMailMesh(), Patience);
        var id = await QueuedInMailMeshAsync(marker);
        await fixture.MailMesh.WaitForStateAsync(id, RecipientState.Delivered, Patience);
        await fixture.Postfix.WaitForEmptyQueueAsync(Patience);
    }

    [Fact]
    public async Task Mail_submitted_to_Postfix_over_SMTP_reaches_every_recipient_through_MailMesh()
    {
        var marker = Marker();
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("carol@origin.test"));
        message.To.Add(MailboxAddress.Parse("dave@dest.test"));
        message.Cc.Add(MailboxAddress.Parse("erin@dest.test"));
        message.Subject = "two recipients via Postfix";
        message.MessageId = marker;
        message.Body = new TextPart("plain") { Text = "Hello.\r\n.\r\n..\r\nbye\r\n" };
        var sent = Serialize(message);

        using (var client = new SmtpClient())
        {
            await client.ConnectAsync(fixture.Postfix.EndPoint.Address.ToString(), fixture.Postfix.Port, SecureSocketOptions.None);
            await client.SendAsync(message);
            await client.DisconnectAsync(quit: true);
        }

        var delivered = await fixture.Destination.WaitForMessageAsync(marker, Patience);
        Assert.Equal("carol@origin.test", delivered.MailFrom);
        // Postfix sends both recipients of the one destination in one transaction, and so does MailMesh.
        Assert.Equal(["dave@dest.test", "erin@dest.test"], delivered.Recipients.Order());
        Assert.True(delivered.Data.AsSpan().EndsWith(sent), "the delivered message must end with the submitted bytes:\n" + delivered.DataText);
        var trace = ReceivedHeaders(delivered);
        Assert.Equal(2, trace.Count);
        Assert.Contains("by mailmesh.test (MailMesh) with ESMTPS", trace[0], StringComparison.Ordinal);
        Assert.Matches(@"by postfix-relay\.test \(Postfix\) with ESMTP id", trace[1]);

        var id = await QueuedInMailMeshAsync(marker);
        await fixture.MailMesh.WaitForStateAsync(id, RecipientState.Delivered, Patience);
        await fixture.Postfix.WaitForEmptyQueueAsync(Patience);
    }

    private static string Marker() => $"{Guid.NewGuid():N}@interop.test";

    /// <summary>
    /// MailMesh's spool id for the message, from Postfix's log: "message-id=&lt;marker&gt;" gives Postfix's queue
    /// id, whose "status=sent" line quotes MailMesh's "250 2.0.0 Ok: queued as ID".
    /// </summary>
    private async Task<Guid> QueuedInMailMeshAsync(string marker)
    {
        var cleanup = await fixture.Postfix.WaitForLogLineAsync(new Regex(Regex.Escape($"message-id=<{marker}>")), Patience);
        var queueId = PostfixQueueId().Match(cleanup).Groups["id"].Value;
        var sent = await fixture.Postfix.WaitForLogLineAsync(
            new Regex(Regex.Escape(queueId) + @": to=<[^>]+>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent \("), Patience);
        var match = QueuedAs().Match(sent);
        Assert.True(match.Success, "Postfix's status=sent line names no MailMesh queue id: " + sent);
        return Guid.Parse(match.Groups["id"].Value);
    }

    /// <summary>The Received header fields at the top of the message, unfolded, newest first.</summary>
    internal static IReadOnlyList<string> ReceivedHeaders(SinkMessage message)
    {
        var text = message.DataText;
        var headers = text[..text.IndexOf("\r\n\r\n", StringComparison.Ordinal)];
        return [.. Regex.Split(headers, @"\r\n(?![ \t])")
            .Where(h => h.StartsWith("Received:", StringComparison.OrdinalIgnoreCase))
            .Select(h => Regex.Replace(h, @"\r\n[ \t]+", " "))];
    }

    internal static byte[] Serialize(MimeMessage message)
    {
        using var stream = new MemoryStream();
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        message.WriteTo(options, stream);
        return stream.ToArray();
    }

    [GeneratedRegex(@"\]: (?<id>[0-9A-F]+): message-id=")]
    private static partial Regex PostfixQueueId();

    [GeneratedRegex(@"queued as (?<id>[0-9a-fA-F-]{36})\)")]
    private static partial Regex QueuedAs();

    [GeneratedRegex(@"(Anonymous|Untrusted|Trusted|Verified) TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+")]
    private static partial Regex TlsToMailMesh();

    /// <summary>
    /// One DNS server, one destination MX (a sink), MailMesh delivering there, and a Postfix instance relaying all
    /// its mail to MailMesh, shared by the tests of the class (each test finds its own mail by Message-ID).
    /// </summary>
    public sealed class Fixture : IAsyncLifetime
    {
        public TestDnsServer Dns { get; private set; } = null!;
        public SmtpSink Destination { get; private set; } = null!;
        internal StandaloneMailMesh MailMesh { get; private set; } = null!;
        public PostfixInstance Postfix { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Dns = TestDnsServer.Start();
            Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
            Destination = SmtpSink.Start();
            Destination.HostName = "mx.dest.test";
            MailMesh = await StandaloneMailMesh.StartAsync(Dns, Destination.Port);

            var options = new PostfixInstanceOptions { HostName = "postfix-relay.test" };
            options.Settings["relayhost"] = $"[127.0.0.1]:{MailMesh.Smtp.Port}";
            // Opportunistic TLS to MailMesh (its certificate is self-signed, so "may", not "verify").
            options.Settings["smtp_tls_security_level"] = "may";
            Postfix = await PostfixInstance.StartAsync(options);
        }

        public async Task DisposeAsync()
        {
            if (Postfix is not null)
            {
                await Postfix.DisposeAsync();
            }

            if (MailMesh is not null)
            {
                await MailMesh.DisposeAsync();
            }

            if (Destination is not null)
            {
                await Destination.DisposeAsync();
            }

            Dns?.Dispose();
        }
    }
}
