using System.Net.Sockets;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailMesh.Ingress.Auth;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MimeKit;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>STARTTLS, implicit TLS, submission, AUTH, CHUNKING, DSN, SMTPUTF8 and REQUIRETLS on the real Ingress host.</summary>
public sealed class SmtpExtensionTests
{
    internal const string User = "alice";
    internal const string Password = "correct horse battery staple";
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token;
    private static readonly Lazy<string> Hash = new(() => PasswordHash.Create(Password, PasswordHash.MinIterations));

    /// <summary>Self-signed TLS, one account, a submission and an implicit-TLS listener, no failure delay.</summary>
    internal static Dictionary<string, string?> TlsSettings(Dictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Ingress:Tls:SelfSigned"] = "true",
            ["Ingress:SubmissionListen"] = "127.0.0.1:0",
            ["Ingress:ImplicitTlsListen"] = "127.0.0.1:0",
            ["Ingress:Auth:Users:0:Name"] = User,
            ["Ingress:Auth:Users:0:PasswordHash"] = Hash.Value,
            ["Ingress:Auth:FailureDelay"] = "00:00:00",
            ["Ingress:Auth:MaxFailureDelay"] = "00:00:00",
        };
        foreach (var (key, value) in extra ?? [])
        {
            settings[key] = value;
        }

        return settings;
    }

    private static MimeMessage Message(string to = "rcpt@example.org")
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@example.com"));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = "hello";
        message.Body = new TextPart("plain") { Text = "Hello over TLS\r\n" };
        return message;
    }

    private static Guid QueuedId(string response) => Guid.Parse(response[(response.LastIndexOf(' ') + 1)..]);

    private static Guid QueuedId(Reply reply)
    {
        Assert.Equal(250, reply.Code);
        return QueuedId(reply.Lines[^1]);
    }

    [Fact]
    public async Task MailKit_submits_with_STARTTLS_and_AUTH_PLAIN()
    {
        await using var host = await IngressHost.StartAsync(TlsSettings());
        using var client = new SmtpClient { LocalDomain = "client.test", ServerCertificateValidationCallback = TestCertificates.IsTestServer };
        await client.ConnectAsync("127.0.0.1", host.SubmissionEndPoint.Port, SecureSocketOptions.StartTls, Timeout);
        Assert.True(client.IsSecure);
        Assert.Contains("PLAIN", client.AuthenticationMechanisms);
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.Chunking));
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.Dsn));
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.UTF8));
        client.AuthenticationMechanisms.Remove("LOGIN");
        await client.AuthenticateAsync(User, Password, Timeout);
        var response = await client.SendAsync(Message(), Timeout);
        await client.DisconnectAsync(quit: true, Timeout);

        var stored = await host.Spool.GetMessageAsync(QueuedId(response), Timeout);
        Assert.NotNull(stored);
        Assert.Equal(User, stored.AuthenticatedUser);
        Assert.Contains("with ESMTPSA", Encoding.UTF8.GetString(stored.Content.Span), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MailKit_submits_over_implicit_TLS_with_AUTH_LOGIN()
    {
        await using var host = await IngressHost.StartAsync(TlsSettings());
        using var client = new SmtpClient { LocalDomain = "client.test", ServerCertificateValidationCallback = TestCertificates.IsTestServer };
        await client.ConnectAsync("127.0.0.1", host.ImplicitTlsEndPoint.Port, SecureSocketOptions.SslOnConnect, Timeout);
        Assert.True(client.IsSecure);
        client.AuthenticationMechanisms.Remove("PLAIN");
        await client.AuthenticateAsync(User, Password, Timeout);
        var response = await client.SendAsync(Message(), Timeout);
        await client.DisconnectAsync(quit: true, Timeout);
        Assert.NotNull(await host.Spool.GetMessageAsync(QueuedId(response), Timeout));
    }

    [Fact]
    public async Task EHLO_offers_STARTTLS_before_TLS_and_AUTH_REQUIRETLS_only_after()
    {
        await using var host = await IngressHost.StartAsync(TlsSettings());
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        var before = (await client.CommandAsync("EHLO client.test")).Text;
        Assert.Contains("STARTTLS", before, StringComparison.Ordinal);
        Assert.DoesNotContain("AUTH", before, StringComparison.Ordinal);
        Assert.DoesNotContain("REQUIRETLS", before, StringComparison.Ordinal);
        foreach (var keyword in new[] { "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "DSN", "SMTPUTF8" })
        {
            Assert.Contains(keyword, before, StringComparison.Ordinal);
        }

        // AUTH over the clear channel: 538 5.7.11 (RFC 4954 §4).
        Assert.Equal(538, (await client.CommandAsync("AUTH PLAIN")).Code);

        // REQUIRETLS without TLS is refused (RFC 8689 §4.1).
        var requireTls = await client.CommandAsync("MAIL FROM:<a@example.com> REQUIRETLS");
        Assert.Equal(530, requireTls.Code);
        Assert.Equal("5.7.10", requireTls.Enhanced);

        Assert.Equal(220, (await client.CommandAsync("STARTTLS")).Code);
        await client.UpgradeToTlsAsync();
        var after = (await client.CommandAsync("EHLO client.test")).Text;
        Assert.DoesNotContain("STARTTLS", after, StringComparison.Ordinal);
        Assert.Contains("AUTH PLAIN LOGIN", after, StringComparison.Ordinal);
        Assert.Contains("REQUIRETLS", after, StringComparison.Ordinal);
        Assert.Equal(503, (await client.CommandAsync("STARTTLS")).Code);

        // REQUIRETLS is stored with the message (RFC 8689).
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> REQUIRETLS")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        var id = QueuedId(await client.CommandAsync("Subject: x\r\n\r\nbody\r\n."));
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.True(stored!.RequireTls);
        Assert.Contains("with ESMTPS", Encoding.UTF8.GetString(stored.Content.Span), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Commands_pipelined_after_STARTTLS_are_discarded_and_the_session_resets()
    {
        await using var host = await IngressHost.StartAsync(TlsSettings());
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RSET")).Code);

        // CVE-2011-0411: "RSET" injected in clear after STARTTLS must not be answered, in clear or under TLS.
        await client.SendAsync("STARTTLS\r\nRSET\r\n");
        var ready = await client.ReadReplyAsync();
        Assert.Equal(220, ready.Code);
        Assert.Equal(0, client.Pending);
        await client.UpgradeToTlsAsync();

        // The first reply under TLS answers our NOOP, not the injected RSET...
        var noop = await client.CommandAsync("NOOP");
        Assert.Equal(250, noop.Code);
        Assert.Equal("2.0.0", noop.Enhanced);

        // ...and the session is back to the start (RFC 3207 §4.2): EHLO first.
        var mail = await client.CommandAsync("MAIL FROM:<a@example.com>");
        Assert.Equal(503, mail.Code);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
    }

    [Fact]
    public async Task Submission_requires_AUTH_before_MAIL()
    {
        await using var host = await IngressHost.StartAsync(TlsSettings());
        await using var client = await RawSmtpClient.ConnectAsync(host.SubmissionEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        var mail = await client.CommandAsync("MAIL FROM:<a@example.com>");
        Assert.Equal(530, mail.Code);
        Assert.Equal("5.7.0", mail.Enhanced);
    }

    [Fact]
    public async Task AUTH_failures_are_535_then_locked_out_454_and_AUTH_parameter_is_accepted()
    {
        await using var host = await IngressHost.StartAsync(TlsSettings(new()
        {
            ["Ingress:Auth:AllowPlaintext"] = "true",
            ["Ingress:Auth:MaxFailures"] = "3",
            ["Ingress:MaxErrorsPerSession"] = "20",
        }));
        await using (var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint))
        {
            Assert.Contains("AUTH PLAIN LOGIN", (await client.CommandAsync("EHLO client.test")).Text, StringComparison.Ordinal);
            static string Plain(string user, string password) => Convert.ToBase64String(Encoding.UTF8.GetBytes("\0" + user + "\0" + password));

            var first = await client.CommandAsync("AUTH PLAIN " + Plain(User, "wrong"));
            Assert.Equal(535, first.Code);
            Assert.Equal("5.7.8", first.Enhanced);

            // LOGIN with challenges; "*" cancels (RFC 4954 §4).
            Assert.Equal(334, (await client.CommandAsync("AUTH LOGIN")).Code);
            Assert.Equal(501, (await client.CommandAsync("*")).Code);
            Assert.Equal(334, (await client.CommandAsync("AUTH LOGIN")).Code);
            Assert.Equal(334, (await client.CommandAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(User)))).Code);
            Assert.Equal(535, (await client.CommandAsync(Convert.ToBase64String("nope"u8.ToArray()))).Code);

            // The third failure locks the client's network out: even the right password gets 454 4.7.0.
            var locked = await client.CommandAsync("AUTH PLAIN " + Plain("bob", "guess"));
            Assert.Equal(454, locked.Code);
            Assert.Equal("4.7.0", locked.Enhanced);
            var stillLocked = await client.CommandAsync("AUTH PLAIN " + Plain(User, Password));
            Assert.Equal(454, stillLocked.Code);

            // MAIL AUTH=<> is understood (RFC 4954 §5).
            Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> AUTH=<>")).Code);
        }
    }

    [Theory]
    [InlineData("LOGIN")]
    [InlineData("PLAIN")]
    public async Task Commands_pipelined_right_after_the_AUTH_response_are_commands(string mechanism)
    {
        // Issue 7 §2: the read mode was derived from a copy taken before the read, so the command pipelined after the
        // password was read as one more AUTH response: 235 then 501. The mode is now one field, set by the exchange.
        await using var host = await IngressHost.StartAsync(TlsSettings(new() { ["Ingress:Auth:AllowPlaintext"] = "true" }));
        await using var client = await RawSmtpClient.ConnectAsync(host.SubmissionEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(334, (await client.CommandAsync("AUTH " + mechanism)).Code);
        string last;
        if (mechanism == "LOGIN")
        {
            Assert.Equal(334, (await client.CommandAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(User)))).Code);
            last = Convert.ToBase64String(Encoding.UTF8.GetBytes(Password));
        }
        else
        {
            last = Convert.ToBase64String(Encoding.UTF8.GetBytes("\0" + User + "\0" + Password));
        }

        await client.SendAsync(last + "\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
        Assert.Equal(235, (await client.ReadReplyAsync()).Code);
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(354, (await client.ReadReplyAsync()).Code);
        var id = QueuedId(await client.CommandAsync("Subject: pipelined\r\n\r\nbody\r\n."));
        Assert.NotNull(await host.Spool.GetMessageAsync(id, Timeout));
    }

    [Fact]
    public async Task AUTH_PLAIN_with_the_right_password_succeeds_and_rejects_a_second_AUTH()
    {
        await using var host = await IngressHost.StartAsync(TlsSettings(new() { ["Ingress:Auth:AllowPlaintext"] = "true" }));
        await using var client = await RawSmtpClient.ConnectAsync(host.SubmissionEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(334, (await client.CommandAsync("AUTH PLAIN")).Code);
        var ok = await client.CommandAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes("\0" + User + "\0" + Password)));
        Assert.Equal(235, ok.Code);
        Assert.Equal("2.7.0", ok.Enhanced);
        Assert.Equal(503, (await client.CommandAsync("AUTH PLAIN AGEAYg==")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> AUTH=a+40example.com")).Code);
    }

    [Fact]
    public async Task BDAT_chunks_pipelined_with_LAST_are_stored_and_DATA_after_BDAT_is_503()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> BODY=BINARYMIME")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);

        // BINARYMIME content cannot come with DATA (RFC 3030 §3).
        Assert.Equal(503, (await client.CommandAsync("DATA")).Code);

        var part1 = "Subject: chunked\r\n\r\n";
        var part2 = "binary\0data\r\n.\r\nnot the end\n";
        await client.SendAsync($"BDAT {part1.Length}\r\n{part1}BDAT {Encoding.Latin1.GetByteCount(part2)}\r\n{part2}");
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);

        // Mixing: DATA and RCPT in the middle of a BDAT transaction are out of sequence.
        Assert.Equal(503, (await client.CommandAsync("DATA")).Code);
        Assert.Equal(503, (await client.CommandAsync("RCPT TO:<c@example.org>")).Code);
        var id = QueuedId(await client.CommandAsync("BDAT 0 LAST"));
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.NotNull(stored);
        Assert.Equal(BodyType.BinaryMime, stored.BodyType);
        Assert.EndsWith(part1 + part2, Encoding.Latin1.GetString(stored.Content.Span), StringComparison.Ordinal);
        Assert.StartsWith("Received: ", Encoding.Latin1.GetString(stored.Content.Span), StringComparison.Ordinal);

        // After BDAT LAST, another BDAT has no transaction: its chunk is read and discarded, then 503.
        Assert.Equal(503, (await client.CommandAsync("BDAT 1 LAST\r\nx")).Code);
    }

    [Fact]
    public async Task BDAT_over_the_size_limit_is_552_and_the_chunk_is_skipped()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxMessageSize"] = "2048" });
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        await client.SendAsync("BDAT 3000 LAST\r\n" + new string('x', 3000));
        var tooBig = await client.ReadReplyAsync();
        Assert.Equal(552, tooBig.Code);
        Assert.Equal("5.3.4", tooBig.Enhanced);

        // The session is still in sync: the 3000 octets were read and dropped.
        Assert.Equal(250, (await client.CommandAsync("NOOP")).Code);
        Assert.True(host.Spool.Stored.IsEmpty);
    }

    [Fact]
    public async Task DSN_parameters_are_validated_decoded_and_stored()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        var badRet = await client.CommandAsync("MAIL FROM:<a@example.com> RET=ALL");
        Assert.Equal(501, badRet.Code);
        Assert.Equal("5.5.4", badRet.Enhanced);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ+2B123")).Code);
        var badNotify = await client.CommandAsync("RCPT TO:<b@example.org> NOTIFY=NEVER,SUCCESS");
        Assert.Equal(501, badNotify.Code);
        Assert.Equal("5.5.4", badNotify.Enhanced);
        Assert.Equal(501, (await client.CommandAsync("RCPT TO:<b@example.org> ORCPT=rfc822")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org> NOTIFY=failure,Delay ORCPT=rfc822;B+40example.org")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<c@example.org> NOTIFY=NEVER")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        var id = QueuedId(await client.CommandAsync("Subject: dsn\r\n\r\nbody\r\n."));

        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.Equal("HDRS", stored!.Ret);
        Assert.Equal("QQ+123", stored.EnvelopeId);
        var status = await host.Spool.GetStatusAsync(id, Timeout);
        var b = status!.Recipients.Single(r => r.Address == "b@example.org");
        Assert.Equal("FAILURE,DELAY", b.Notify);
        Assert.Equal("rfc822;B@example.org", b.OriginalRecipient);
        Assert.Equal("NEVER", status.Recipients.Single(r => r.Address == "c@example.org").Notify);
    }

    [Fact]
    public async Task SMTPUTF8_admits_UTF8_addresses_only_when_given_and_routes_on_the_A_label()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);

        await client.SendUtf8Async("MAIL FROM:<jörg@bücher.example>\r\n");
        var noUtf8 = await client.ReadReplyAsync();
        Assert.Equal(553, noUtf8.Code);
        Assert.Equal("5.6.7", noUtf8.Enhanced);

        await client.SendUtf8Async("MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n");
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        await client.SendUtf8Async("RCPT TO:<用户@例子.广告>\r\n");
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendUtf8Async("Subject: ü\r\n\r\nbody\r\n.\r\n");
        var id = QueuedId(await client.ReadReplyAsync());

        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.True(stored!.SmtpUtf8);
        Assert.Equal("jörg@xn--bcher-kva.example", stored.Sender);
        var status = await host.Spool.GetStatusAsync(id, Timeout);
        var aLabel = new System.Globalization.IdnMapping().GetAscii("例子.广告");
        Assert.StartsWith("xn--", aLabel, StringComparison.Ordinal);
        Assert.Equal("用户@" + aLabel, status!.Recipients.Single().Address);
        Assert.Equal(aLabel, status.Recipients.Single().Domain);

        // A UTF-8 recipient in a transaction without SMTPUTF8.
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        await client.SendUtf8Async("RCPT TO:<ü@example.org>\r\n");
        Assert.Equal(553, (await client.ReadReplyAsync()).Code);

        // 8-bit outside MAIL/RCPT stays a syntax error.
        await client.SendUtf8Async("HELO bücher.example\r\n");
        Assert.Equal(501, (await client.ReadReplyAsync()).Code);
    }
}
