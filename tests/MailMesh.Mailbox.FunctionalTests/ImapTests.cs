using System.Text;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Search;
using MailKit.Security;
using MailMesh.Testing.Imap;
using MimeKit;

namespace MailMesh.Mailbox.FunctionalTests;

/// <summary>IMAP (RFC 9051) against MailKit's ImapClient and raw sockets; bytes compared with what the store holds.</summary>
public sealed class ImapTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    internal static Task<ImapClient> ConnectAsync(MailboxHost host) =>
        ImapSessions.ConnectAsync(host.Imap.Port, MailboxHost.HostName, MailboxHost.User, MailboxHost.Password);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MailKit_fetches_structure_and_the_stored_bytes(bool postgres)
    {
        await using var host = await MailboxHost.StartAsync(postgres: postgres);
        var plain = await host.DeliverAsync(Samples.Plain);
        var multipart = await host.DeliverAsync(Samples.Multipart);
        using var client = await ConnectAsync(host);
        Assert.True(client.Capabilities.HasFlag(ImapCapabilities.IMAP4rev1));
        Assert.True(client.Capabilities.HasFlag(ImapCapabilities.Idle));
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        Assert.Equal(2, inbox.Count);
        Assert.True(inbox.UidValidity > 0);

        var summaries = await inbox.FetchAsync(0, -1, MessageSummaryItems.Envelope | MessageSummaryItems.BodyStructure | MessageSummaryItems.Flags
            | MessageSummaryItems.UniqueId | MessageSummaryItems.Size | MessageSummaryItems.InternalDate);
        Assert.Equal(2, summaries.Count);
        Assert.Equal("Hello", summaries[0].Envelope!.Subject);
        Assert.Equal("bob@example.org", summaries[0].Envelope!.From.Mailboxes.Single().Address);
        Assert.Equal("hello@example.org", summaries[0].Envelope!.MessageId);
        Assert.Equal((uint)plain.Length, summaries[0].Size);
        Assert.Equal((uint)multipart.Length, summaries[1].Size);
        Assert.False(summaries[0].Flags!.Value.HasFlag(MessageFlags.Seen));

        var report = summaries[1];
        Assert.Equal("Jörg", report.Envelope!.From.Mailboxes.Single().Name);
        Assert.Equal(["alice@test.example", "carol@example.net"], report.Envelope!.To.Mailboxes.Select(m => m.Address));
        var body = Assert.IsType<BodyPartMultipart>(report.Body!);
        Assert.Equal(3, body.BodyParts.Count);
        var text = Assert.IsType<BodyPartText>(body.BodyParts[0]);
        Assert.Equal("utf-8", text.ContentType.Charset);
        Assert.Equal(2u, text.Lines);
        var attachment = Assert.IsType<BodyPartBasic>(body.BodyParts[1]);
        Assert.Equal("r.pdf", attachment.FileName);
        Assert.Equal("base64", attachment.ContentTransferEncoding, ignoreCase: true);
        var nested = Assert.IsType<BodyPartMessage>(body.BodyParts[2]);
        Assert.Equal("Inner", nested.Envelope!.Subject);

        // BODY.PEEK[] and BODY[] are the stored bytes, exactly.
        Assert.Equal(plain, await RawAsync(inbox, summaries[0].UniqueId));
        Assert.Equal(multipart, await RawAsync(inbox, summaries[1].UniqueId));

        // BODY[1] of the multipart, decoded by MailKit; BODY[2] is the base64 of the attachment.
        var part = (TextPart)await inbox.GetBodyPartAsync(report.UniqueId, text);
        Assert.Equal("The report is attached.\nSecond line.", part.Text.ReplaceLineEndings("\n"));
        var pdf = (MimePart)await inbox.GetBodyPartAsync(report.UniqueId, attachment);
        using (var decoded = new MemoryStream())
        {
            await pdf.Content!.DecodeToAsync(decoded);
            Assert.Equal("%PDF-1.4\n", Encoding.ASCII.GetString(decoded.ToArray()));
        }

        var inner = (MessagePart)await inbox.GetBodyPartAsync(report.UniqueId, nested);
        Assert.Equal("Inner", inner.Message!.Subject);

        // A partial: BODY[]<10.20>.
        await using (var partial = await inbox.GetStreamAsync(summaries[0].UniqueId, 10, 20))
        {
            using var copy = new MemoryStream();
            await partial.CopyToAsync(copy);
            Assert.Equal(plain.AsSpan(10, 20).ToArray(), copy.ToArray());
        }

        // HEADER.FIELDS.
        var headers = await inbox.GetHeadersAsync(summaries[1].UniqueId);
        Assert.Equal("Report", headers[HeaderId.Subject]);

        await client.DisconnectAsync(true);
    }

    private static async Task<byte[]> RawAsync(IMailFolder folder, UniqueId uid)
    {
        await using var stream = await folder.GetStreamAsync(uid, string.Empty);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }

    [Fact]
    public async Task MailKit_stores_flags_searches_expunges_appends_copies_and_moves()
    {
        await using var host = await MailboxHost.StartAsync();
        await host.DeliverAsync(Samples.Plain);
        await host.DeliverAsync(Samples.Multipart);
        await host.DeliverAsync(Samples.Plain.Replace("Hello", "Third", StringComparison.Ordinal));
        using var client = await ConnectAsync(host);
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        var uids = await inbox.SearchAsync(SearchQuery.All);
        Assert.Equal(3, uids.Count);

        await inbox.AddFlagsAsync(uids[0], MessageFlags.Flagged | MessageFlags.Seen, silent: false);
        await inbox.AddFlagsAsync(uids[1], MessageFlags.Deleted, silent: true);
        Assert.Equal([uids[0]], await inbox.SearchAsync(SearchQuery.Flagged));
        Assert.Equal([uids[1], uids[2]], await inbox.SearchAsync(SearchQuery.NotSeen));
        Assert.Equal([uids[2]], await inbox.SearchAsync(SearchQuery.SubjectContains("third")));
        Assert.Equal([uids[1]], await inbox.SearchAsync(SearchQuery.BodyContains("report is attached")));
        Assert.Equal([uids[1]], await inbox.SearchAsync(SearchQuery.HeaderContains("Cc", "dave")));

        await inbox.ExpungeAsync();
        Assert.Equal(2, inbox.Count);

        // APPEND with a literal; APPENDUID comes back.
        var sent = client.GetFolder(SpecialFolder.Sent)!;
        Assert.NotNull(sent);
        var appended = new MimeMessage();
        appended.From.Add(new MailboxAddress("Alice", MailboxHost.User));
        appended.To.Add(new MailboxAddress("Bob", "bob@example.org"));
        appended.Subject = "Sent by me";
        appended.Body = new TextPart("plain") { Text = new string('x', 10000) };
        var appendedUid = await sent.AppendAsync(appended, MessageFlags.Seen);
        Assert.NotNull(appendedUid);
        await sent.OpenAsync(FolderAccess.ReadOnly);
        Assert.Equal(1, sent.Count);
        var roundTrip = await sent.GetMessageAsync(appendedUid.Value);
        Assert.Equal("Sent by me", roundTrip.Subject);

        // COPY and MOVE with COPYUID.
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        var trash = client.GetFolder(SpecialFolder.Trash)!;
        var copied = await inbox.CopyToAsync(uids[0], trash);
        Assert.NotNull(copied);
        var moved = await inbox.MoveToAsync(uids[2], trash);
        Assert.NotNull(moved);
        Assert.Equal(1, inbox.Count);
        await trash.StatusAsync(StatusItems.Count | StatusItems.UidNext | StatusItems.UidValidity);
        Assert.Equal(2, trash.Count);

        // CREATE, RENAME, DELETE, LIST.
        var personal = client.GetFolder(client.PersonalNamespaces[0]);
        var created = await personal.CreateAsync("Projects", isMessageFolder: true);
        await created!.RenameAsync(personal, "Archive2");
        var folders = await personal.GetSubfoldersAsync();
        Assert.Contains(folders, f => f.Name == "Archive2");
        Assert.Contains(folders, f => f.Attributes.HasFlag(FolderAttributes.Junk));
        await folders.Single(f => f.Name == "Archive2").DeleteAsync();
        await client.DisconnectAsync(true);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Two_sessions_see_each_others_flags_and_expunges_and_IDLE_wakes_on_delivery(bool postgres)
    {
        await using var host = await MailboxHost.StartAsync(postgres: postgres);
        await host.DeliverAsync(Samples.Plain);
        await host.DeliverAsync(Samples.Multipart);
        using var a = await ConnectAsync(host);
        using var b = await ConnectAsync(host);
        await a.Inbox.OpenAsync(FolderAccess.ReadWrite);
        await b.Inbox.OpenAsync(FolderAccess.ReadWrite);
        var uids = await a.Inbox.SearchAsync(SearchQuery.All);

        // Flags set in A reach B at its next NOOP.
        var flagged = new TaskCompletionSource<UniqueId?>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Inbox.MessageFlagsChanged += (_, e) => flagged.TrySetResult(e.UniqueId);
        await a.Inbox.AddFlagsAsync(uids[0], MessageFlags.Flagged, silent: true);
        await b.NoOpAsync();
        Assert.Equal(uids[0], await flagged.Task.WaitAsync(Wait));

        // An expunge in A reaches B.
        var expunged = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Inbox.MessageExpunged += (_, e) => expunged.TrySetResult(e.Index);
        await a.Inbox.AddFlagsAsync(uids[1], MessageFlags.Deleted, silent: true);
        await a.Inbox.ExpungeAsync();
        await b.NoOpAsync();
        Assert.Equal(1, await expunged.Task.WaitAsync(Wait));
        Assert.Equal(1, b.Inbox.Count);

        // IDLE in B is woken by a delivery (the store's change signal), and by A's flag change.
        var arrived = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Inbox.CountChanged += (_, _) => arrived.TrySetResult(b.Inbox.Count);
        using var done = new CancellationTokenSource();
        var idle = b.IdleAsync(done.Token);
        await ImapSessions.WaitForIdleAsync(b, Wait);
        await host.DeliverAsync(Samples.Plain.Replace("Hello", "While idling", StringComparison.Ordinal));
        Assert.Equal(2, await arrived.Task.WaitAsync(Wait));
        await done.CancelAsync();
        await idle.WaitAsync(Wait);
        Assert.Equal(2, (await b.Inbox.SearchAsync(SearchQuery.All)).Count);
    }

    [Fact]
    public async Task Raw_session_answers_as_RFC_9051_says()
    {
        await using var host = await MailboxHost.StartAsync(new() { ["Mailbox:AllowPlaintextAuth"] = "true" });
        var stored = await host.DeliverAsync(Samples.Plain);
        using var raw = await RawClient.ConnectAsync(host.Imap);
        Assert.StartsWith("* OK [CAPABILITY IMAP4rev1 IMAP4rev2", await raw.LineAsync(), StringComparison.Ordinal);
        await raw.SendAsync("a1 NOOP extra\r\n");
        Assert.Equal("a1 BAD Unexpected extra arguments", await raw.LineAsync());
        await raw.SendAsync("a2 SELECT INBOX\r\n");
        Assert.Equal("a2 BAD Log in first", await raw.LineAsync());

        // A synchronizing literal for the password, then a non-synchronizing one (LITERAL-).
        await raw.SendAsync("a3 LOGIN {" + MailboxHost.User.Length + "}\r\n");
        Assert.StartsWith("+ ", await raw.LineAsync(), StringComparison.Ordinal);
        await raw.SendAsync(MailboxHost.User + " {" + MailboxHost.Password.Length + "+}\r\n" + MailboxHost.Password + "\r\n");
        Assert.StartsWith("a3 OK [CAPABILITY", await raw.LineAsync(), StringComparison.Ordinal);

        await raw.SendAsync("a4 SELECT inbox\r\n");
        var select = await raw.UntilTaggedAsync("a4");
        Assert.Contains("* 1 EXISTS", select);
        Assert.Contains(select, l => l.StartsWith("* OK [UIDVALIDITY ", StringComparison.Ordinal));
        Assert.Contains(select, l => l.StartsWith("* OK [UIDNEXT 2]", StringComparison.Ordinal));
        Assert.Contains(select, l => l.StartsWith("* OK [PERMANENTFLAGS (", StringComparison.Ordinal));
        Assert.Equal("a4 OK [READ-WRITE] SELECT completed", select[^1]);

        await raw.SendAsync("a5 FETCH 1 (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n");
        var fetch = await raw.UntilTaggedAsync("a5");
        Assert.Equal("* 1 FETCH (UID 1 RFC822.SIZE " + stored.Length + " BODY[HEADER.FIELDS (SUBJECT)] {18}", fetch[0]);
        Assert.Equal("Subject: Hello", fetch[1]);
        Assert.Equal("a5 OK FETCH completed", fetch[^1]);

        // RFC 9051 §6.4.5: BODY[...] (not PEEK) sets \Seen, and the FETCH response says so.
        await raw.SendAsync("a5b FETCH 1 BODY[TEXT]<0.8>\r\n");
        fetch = await raw.UntilTaggedAsync("a5b");
        Assert.Equal("* 1 FETCH (FLAGS (\\Seen) BODY[TEXT]<0> {8}", fetch[0]);
        Assert.StartsWith("Hi Alice)", fetch[1], StringComparison.Ordinal);

        await raw.SendAsync("a6 FETCH 2 FLAGS\r\n");
        Assert.Equal("a6 BAD Invalid message sequence number", await raw.LineAsync());
        await raw.SendAsync("a7 UID FETCH 5 FLAGS\r\n");
        Assert.Equal("a7 OK UID FETCH completed", await raw.LineAsync());
        await raw.SendAsync("a8 SEARCH RETURN (COUNT MIN) ALL\r\n");
        Assert.Equal("* ESEARCH (TAG \"a8\") MIN 1 COUNT 1", await raw.LineAsync());
        await raw.LineAsync();
        await raw.SendAsync("a9 FROB\r\n");
        Assert.Equal("a9 BAD Unknown command", await raw.LineAsync());
        await raw.SendAsync("a10 LOGIN " + new string('x', 70000) + "\r\n");
        Assert.Equal("a10 BAD Command line too long", await raw.LineAsync());
        await raw.SendAsync("a11 APPEND INBOX {99999999999}\r\n");
        Assert.Equal("a11 NO [TOOBIG] Literal too large", await raw.LineAsync());
        await raw.SendAsync("a12 LOGOUT\r\n");
        Assert.StartsWith("* BYE", await raw.LineAsync(), StringComparison.Ordinal);
        Assert.Equal("a12 OK LOGOUT completed", await raw.LineAsync());
    }

    [Fact]
    public async Task Failed_logins_lock_the_client_network_out_as_SMTP_AUTH_does()
    {
        await using var host = await MailboxHost.StartAsync(new()
        {
            ["Mailbox:AllowPlaintextAuth"] = "true",
            ["Mailbox:Auth:MaxFailures"] = "2",
            ["Mailbox:Auth:FailureDelay"] = "00:00:00",
            ["Mailbox:Auth:MaxFailureDelay"] = "00:00:00",
        });
        using var raw = await RawClient.ConnectAsync(host.Imap);
        await raw.LineAsync();
        Assert.Equal("a1 NO [AUTHENTICATIONFAILED] Authentication failed", await raw.CommandAsync("a1 LOGIN " + MailboxHost.User + " wrong"));
        Assert.Equal("a2 NO [UNAVAILABLE] Too many failed logins; try again later", await raw.CommandAsync("a2 LOGIN nobody@test.example wrong"));

        // Locked out: even the right password is not checked, on a new connection too, and POP3 shares the throttle.
        Assert.Equal("a3 NO [UNAVAILABLE] Too many failed logins; try again later", await raw.CommandAsync("a3 LOGIN " + MailboxHost.User + " \"" + MailboxHost.Password + "\""));
        using var pop3 = await RawClient.ConnectAsync(host.Pop3);
        await pop3.LineAsync();
        Assert.Equal("+OK", await pop3.CommandAsync("USER " + MailboxHost.User));
        Assert.StartsWith("-ERR [LOGIN-DELAY]", await pop3.CommandAsync("PASS " + MailboxHost.Password), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LOGIN_is_disabled_without_TLS()
    {
        await using var host = await MailboxHost.StartAsync();
        using var raw = await RawClient.ConnectAsync(host.Imap);
        var greeting = await raw.LineAsync();
        Assert.Contains("LOGINDISABLED", greeting, StringComparison.Ordinal);
        Assert.Contains("STARTTLS", greeting, StringComparison.Ordinal);
        await raw.SendAsync("a1 LOGIN alice@test.example x\r\n");
        Assert.StartsWith("a1 NO [PRIVACYREQUIRED]", await raw.LineAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task IMAPS_with_AUTHENTICATE_PLAIN()
    {
        await using var host = await MailboxHost.StartAsync();
        await host.DeliverAsync(Samples.Plain);
        using var client = new ImapClient { ServerCertificateValidationCallback = MailboxHost.IsTestCertificate };
        await client.ConnectAsync("127.0.0.1", host.Imaps.Port, SecureSocketOptions.SslOnConnect);
        await client.AuthenticateAsync(new SaslMechanismPlain(MailboxHost.User, MailboxHost.Password));
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);
        Assert.Equal(1, client.Inbox.Count);
        await client.DisconnectAsync(true);
    }
}
