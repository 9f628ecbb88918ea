using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailMesh.Contracts;
using MailMesh.Storage;
using MimeKit;

namespace MailMesh.Ingress.FunctionalTests;

public sealed class SmtpServerTests
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;

    private static async Task<RawSmtpClient> OpenTransactionAsync(IngressHost host, string recipient = "rcpt@example.org")
    {
        var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<sender@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync($"RCPT TO:<{recipient}>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        return client;
    }

    private static Guid QueuedId(Reply reply)
    {
        Assert.Equal(250, reply.Code);
        var text = reply.Lines[^1];
        return Guid.Parse(text[(text.LastIndexOf(' ') + 1)..]);
    }

    [Fact]
    public async Task MailKit_sends_to_several_recipients_with_8BITMIME_and_PIPELINING()
    {
        await using var host = await IngressHost.StartAsync();
        using var client = new SmtpClient { LocalDomain = "client.test" };
        await client.ConnectAsync(host.SmtpEndPoint.Address.ToString(), host.SmtpEndPoint.Port, SecureSocketOptions.None, Timeout);
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.Pipelining));
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.EightBitMime));
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.EnhancedStatusCodes));
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.Size));
        Assert.Equal(35 * 1024 * 1024, (int)client.MaxSize);

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@example.com"));
        message.To.Add(MailboxAddress.Parse("one@example.org"));
        message.To.Add(MailboxAddress.Parse("two@example.net"));
        message.Cc.Add(MailboxAddress.Parse("Three@Example.NET"));
        message.Subject = "Grüße";
        message.Body = new TextPart("plain") { Text = "Schöne Grüße aus MailMesh\r\n", ContentTransferEncoding = ContentEncoding.EightBit };
        var response = await client.SendAsync(message, Timeout);
        await client.DisconnectAsync(quit: true, Timeout);

        var id = Guid.Parse(response[(response.LastIndexOf(' ') + 1)..]);
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.NotNull(stored);
        Assert.Equal("sender@example.com", stored.Sender);
        Assert.Equal(BodyType.EightBitMime, stored.BodyType);
        Assert.Equal("client.test", stored.ClientHelo);
        Assert.Equal("127.0.0.1", stored.ClientAddress);
        Assert.NotNull(stored.TraceParent);
        var content = Encoding.UTF8.GetString(stored.Content.Span);
        Assert.StartsWith("Received: from client.test ([127.0.0.1])\r\n\tby mx.test.example (MailMesh) with ESMTP id " + id, content);
        Assert.DoesNotContain("\tfor <", content.Split("\r\n\r\n")[0]); // several recipients: no "for" clause
        Assert.Contains("Schöne Grüße aus MailMesh", content);

        var status = await host.Spool.GetStatusAsync(id, Timeout);
        Assert.Equal(["one@example.org", "three@example.net", "two@example.net"], status!.Recipients.Select(r => r.Address.ToLowerInvariant()).Order());

        var announced = await host.Announcements.First.WaitAsync(Timeout);
        Assert.Equal(id, announced.MessageId);
        Assert.Equal(3, announced.RecipientCount);
        Assert.Equal(stored.Content.Length, announced.Size);
    }

    [Fact]
    public async Task Pipelined_transaction_is_answered_in_order_and_stored_exactly()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        // RFC 2920 §3.1: EHLO ends a group, so the client waits for its reply; then MAIL, RCPT and DATA go in one.
        await client.SendAsync("EHLO client.test\r\n");
        var ehlo = await client.ReadReplyAsync();
        Assert.Equal(250, ehlo.Code);
        Assert.Equal(
            ["250-mx.test.example greets client.test", "250-PIPELINING", "250-SIZE 36700160", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-CHUNKING", "250-BINARYMIME", "250-DSN", "250 SMTPUTF8"],
            ehlo.Lines);
        await client.SendAsync("MAIL FROM:<sender@example.com> SIZE=100 BODY=7BIT\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n");
        Assert.Equal("250 2.1.0 Ok", (await client.ReadReplyAsync()).Text);
        Assert.Equal("250 2.1.5 Ok", (await client.ReadReplyAsync()).Text);
        Assert.Equal(354, (await client.ReadReplyAsync()).Code);

        await client.SendAsync("Subject: test\r\n\r\n..stuffed\r\nline\r\n.\r\nRSET\r\nQUIT\r\n");
        var queued = await client.ReadReplyAsync();
        var id = QueuedId(queued);
        Assert.Equal("2.0.0", queued.Enhanced);

        // 250 means safe: the message is in the spool when the reply arrives.
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.NotNull(stored);
        var content = Encoding.ASCII.GetString(stored.Content.Span);
        Assert.Matches(@"^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.test\.example \(MailMesh\) with ESMTP id [0-9a-f-]{36}\r\n\tfor <rcpt@example\.org>; \w{3}, \d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000\r\n", content);
        Assert.EndsWith("\r\nSubject: test\r\n\r\n.stuffed\r\nline\r\n", content);
        Assert.Equal(BodyType.SevenBit, stored.BodyType);

        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        var bye = await client.ReadReplyAsync();
        Assert.Equal(221, bye.Code);
        Assert.True(await client.IsClosedAsync());
    }

    // SMTP smuggling: each fake end of data followed by a smuggled transaction. The smuggled commands must stay
    // content, the whole message must be refused after the real CRLF.CRLF, and nothing may be stored.
    [Theory]
    [InlineData("\n.\n")]
    [InlineData("\r.\r")]
    [InlineData("\n.\r\n")]
    [InlineData("\r\n.\n")]
    [InlineData("\r.\r\n")]
    [InlineData("\r\n.\r")]
    public async Task Smuggling_variants_end_no_message_early_and_are_refused(string fakeEnd)
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await OpenTransactionAsync(host);
        await client.SendAsync("Subject: first\r\n\r\nbody" + fakeEnd
            + "MAIL FROM:<forged@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\nNOOP\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.Equal(554, reply.Code);
        Assert.Equal("5.6.0", reply.Enhanced);
        Assert.Equal(250, (await client.ReadReplyAsync()).Code); // the NOOP after the real end

        Assert.Empty(host.Spool.Stored);
        Assert.DoesNotContain(host.Policy.Asked, m => m is CheckRecipient { Recipient: "victim@example.org" });
        Assert.Equal(0, (await host.Spool.CountByStateAsync(Timeout)).Values.Sum());
    }

    [Fact]
    public async Task Bare_line_feeds_are_normalised_when_configured()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:NormalizeBareLineFeeds"] = "true" });
        await using var client = await OpenTransactionAsync(host);
        await client.SendAsync("Subject: lf\n\nline\n.\nstill data\r\n.\r\n");
        var id = QueuedId(await client.ReadReplyAsync());
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.EndsWith("\r\nSubject: lf\r\n\r\nline\r\n.\r\nstill data\r\n", Encoding.ASCII.GetString(stored!.Content.Span));
    }

    [Fact]
    public async Task Bad_sequence_is_503()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        var early = await client.CommandAsync("MAIL FROM:<a@example.com>");
        Assert.Equal(503, early.Code);
        Assert.Equal("5.5.1", early.Enhanced);
        Assert.Equal(250, (await client.CommandAsync("HELO client.test")).Code);
        Assert.Equal(503, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        Assert.Equal(503, (await client.CommandAsync("DATA")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(503, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(554, (await client.CommandAsync("DATA")).Code); // no valid recipients
        Assert.Equal(250, (await client.CommandAsync("RSET")).Code);
        Assert.Equal(503, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
    }

    [Fact]
    public async Task Line_too_long_is_500_and_the_session_continues()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        var reply = await client.CommandAsync("NOOP " + new string('x', 5000));
        Assert.Equal(500, reply.Code);
        Assert.Equal("5.5.2", reply.Enhanced);
        Assert.Contains("Line too long", reply.Text);
        Assert.Equal(250, (await client.CommandAsync("NOOP")).Code);
    }

    [Fact]
    public async Task Unknown_command_and_bare_LF_command()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        var unknown = await client.CommandAsync("FROB");
        Assert.Equal(500, unknown.Code);
        Assert.Equal("5.5.1", unknown.Enhanced);
        await client.SendAsync("NOOP\n");
        var bare = await client.ReadReplyAsync();
        Assert.Equal(500, bare.Code);
        Assert.Equal("5.5.2", bare.Enhanced);
        Assert.Equal(252, (await client.CommandAsync("VRFY someone")).Code);
        Assert.Equal(502, (await client.CommandAsync("STARTTLS")).Code);
    }

    [Fact]
    public async Task Too_many_errors_is_421_and_close()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxErrorsPerSession"] = "3" });
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        await client.SendAsync("BAD1\r\nBAD2\r\nBAD3\r\nNOOP\r\n");
        Assert.Equal(500, (await client.ReadReplyAsync()).Code);
        Assert.Equal(500, (await client.ReadReplyAsync()).Code);
        Assert.Equal(500, (await client.ReadReplyAsync()).Code);
        var closing = await client.ReadReplyAsync();
        Assert.Equal(421, closing.Code);
        Assert.Equal("4.7.0", closing.Enhanced);
        Assert.True(await client.IsClosedAsync());
    }

    [Fact]
    public async Task Policy_refusal_passes_through()
    {
        await using var host = await IngressHost.StartAsync();
        host.Policy.Recipient = r => r.Recipient.EndsWith("@elsewhere.example", StringComparison.Ordinal)
            ? new PolicyDecision { Accepted = false, ReplyCode = 550, EnhancedCode = "5.7.1", Reason = "Relay access denied" }
            : PolicyDecision.Accept;
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        var refused = await client.CommandAsync("RCPT TO:<someone@elsewhere.example>");
        Assert.Equal("550 5.7.1 Relay access denied", refused.Text);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<Local@Example.ORG>")).Code);
        var asked = host.Policy.Asked.OfType<CheckRecipient>().Last();
        Assert.Equal("Local@example.org", asked.Recipient);
        Assert.Equal("127.0.0.1", asked.ClientAddress);
        Assert.Equal("a@example.com", asked.Sender);
    }

    [Fact]
    public async Task Connection_refused_by_policy_gets_the_reply_and_is_closed()
    {
        await using var host = await IngressHost.StartAsync();
        host.Policy.Connection = _ => new PolicyDecision { Accepted = false, ReplyCode = 554, EnhancedCode = "5.7.1", Reason = "Go away" };
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint, readGreeting: false);
        Assert.Equal("554 5.7.1 Go away", (await client.ReadReplyAsync()).Text);
        Assert.True(await client.IsClosedAsync());
    }

    [Fact]
    public async Task Policy_timeout_is_451_and_nothing_is_stored()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:PolicyTimeout"] = "00:00:00.300" });
        host.Policy.Recipient = _ => null; // Policy never answers
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        var reply = await client.CommandAsync("RCPT TO:<b@example.org>");
        Assert.Equal(451, reply.Code);
        Assert.Equal("4.3.0", reply.Enhanced);
        Assert.Equal(554, (await client.CommandAsync("DATA")).Code);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task Message_policy_timeout_is_451_and_nothing_is_stored()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:PolicyTimeout"] = "00:00:00.300" });
        host.Policy.Message = _ => null;
        await using var client = await OpenTransactionAsync(host);
        await client.SendAsync("Subject: x\r\n\r\nbody\r\n.\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.Equal(451, reply.Code);
        Assert.Equal("4.3.0", reply.Enhanced);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task Spool_failure_is_451()
    {
        await using var host = await IngressHost.StartAsync();
        host.Spool.BeforeStore = (_, _) => throw new IOException("disk on fire");
        await using var client = await OpenTransactionAsync(host);
        await client.SendAsync("Subject: x\r\n\r\nbody\r\n.\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.Equal(451, reply.Code);
        Assert.Equal("4.3.0", reply.Enhanced);
        Assert.Equal(250, (await client.CommandAsync("NOOP")).Code);
        Assert.Empty(host.Announcements.Received);
    }

    [Fact]
    public async Task Spool_timeout_is_451()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:SpoolTimeout"] = "00:00:00.300" });
        host.Spool.BeforeStore = (_, token) => Task.Delay(System.Threading.Timeout.Infinite, token);
        await using var client = await OpenTransactionAsync(host);
        await client.SendAsync("Subject: x\r\n\r\nbody\r\n.\r\n");
        Assert.Equal(451, (await client.ReadReplyAsync()).Code);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task Size_limit_at_MAIL_and_during_DATA()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxMessageSize"] = "2048" });
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        var ehlo = await client.CommandAsync("EHLO client.test");
        Assert.Contains("250-SIZE 2048", ehlo.Lines);
        var declared = await client.CommandAsync("MAIL FROM:<a@example.com> SIZE=4096");
        Assert.Equal(552, declared.Code);
        Assert.Equal("5.3.4", declared.Enhanced);

        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> SIZE=1000")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        var line = new string('x', 98) + "\r\n";
        await client.SendAsync(string.Concat(Enumerable.Repeat(line, 50)) + ".\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.Equal(552, reply.Code);
        Assert.Equal("5.3.4", reply.Enhanced);
        Assert.Equal(250, (await client.CommandAsync("NOOP")).Code);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task Too_many_Received_headers_is_a_loop()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxReceivedHeaders"] = "3" });
        await using var client = await OpenTransactionAsync(host);
        await client.SendAsync("Received: from a\r\nReceived: from b\r\nReceived: from c\r\nSubject: loop\r\n\r\nx\r\n.\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.Equal(554, reply.Code);
        Assert.Equal("5.4.6", reply.Enhanced);
    }

    [Fact]
    public async Task Quit_is_221_and_close()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        var reply = await client.CommandAsync("QUIT");
        Assert.Equal(221, reply.Code);
        Assert.Equal("2.0.0", reply.Enhanced);
        Assert.True(await client.IsClosedAsync());
    }
}
