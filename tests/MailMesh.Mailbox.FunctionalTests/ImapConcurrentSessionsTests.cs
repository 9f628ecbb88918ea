using MailKit;
using MailKit.Search;
using MailMesh.Testing.Imap;
using MimeKit;

namespace MailMesh.Mailbox.FunctionalTests;

/// <summary>
/// Two IMAP sessions on one mailbox of one replica: what one does reaches the other while it IDLEs, and message
/// sequence numbers stay consistent (RFC 9051 §7.5.1: no EXPUNGE response while FETCH, STORE or SEARCH runs).
/// (Sessions on two replicas: <c>MailboxReplicaTests</c> in MailMesh.EndToEnd.IntegrationTests.)
/// </summary>
public sealed class ImapConcurrentSessionsTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task IDLE_reports_the_flags_expunges_and_appends_of_another_session(bool postgres)
    {
        await using var host = await MailboxHost.StartAsync(postgres: postgres);
        await host.DeliverAsync(Samples.Plain);
        await host.DeliverAsync(Samples.Multipart);
        await host.DeliverAsync(Samples.Plain.Replace("Hello", "Third", StringComparison.Ordinal));
        using var a = await ImapTests.ConnectAsync(host);
        using var b = await ImapTests.ConnectAsync(host);
        await a.Inbox.OpenAsync(FolderAccess.ReadWrite);
        await b.Inbox.OpenAsync(FolderAccess.ReadWrite);
        var uids = await b.Inbox.SearchAsync(SearchQuery.All);

        var updates = new ImapSessions.Updates(a.Inbox);
        using var done = new CancellationTokenSource();
        var idle = a.IdleAsync(done.Token);
        await ImapSessions.WaitForIdleAsync(a, Wait);

        await b.Inbox.AddFlagsAsync(uids[0], MessageFlags.Flagged, silent: true);
        Assert.Equal((0, MessageFlags.Flagged), await updates.Flags.ReadAsync(m => m.Flags.HasFlag(MessageFlags.Flagged), Wait));

        await b.Inbox.AddFlagsAsync(uids[1], MessageFlags.Deleted, silent: true);
        await b.Inbox.ExpungeAsync();
        Assert.Equal(1, await updates.Expunged.ReadAsync(_ => true, Wait));

        await b.Inbox.AppendAsync(new MimeMessage([MailboxAddress.Parse("b@example.org")], [MailboxAddress.Parse(MailboxHost.User)], "appended by B", new TextPart("plain") { Text = "x" }));
        Assert.Equal(3, await updates.Count.ReadAsync(count => count == 3, Wait));

        await done.CancelAsync();
        await idle.WaitAsync(Wait);
        Assert.Equal(3, a.Inbox.Count);
        var now = await a.Inbox.SearchAsync(SearchQuery.All);
        Assert.Equal([uids[0], uids[2]], now.Take(2));
        Assert.Equal([uids[0]], await a.Inbox.SearchAsync(SearchQuery.Flagged));
    }

    [Fact]
    public async Task Expunges_by_another_session_wait_for_a_command_that_may_report_them()
    {
        await using var host = await MailboxHost.StartAsync(new() { ["Mailbox:AllowPlaintextAuth"] = "true" });
        await host.DeliverAsync(Samples.Plain);
        await host.DeliverAsync(Samples.Multipart);
        await host.DeliverAsync(Samples.Plain.Replace("Hello", "Third", StringComparison.Ordinal));
        using var a = await LoggedInAsync(host, "a");
        using var b = await LoggedInAsync(host, "b");

        // B expunges message 2 (UID 2) and flags message 1.
        await b.SendAsync("b3 STORE 2 +FLAGS.SILENT (\\Deleted)\r\n");
        Assert.Equal("b3 OK STORE completed", (await b.UntilTaggedAsync("b3"))[^1]);
        await b.SendAsync("b4 EXPUNGE\r\n");
        Assert.Equal(["* 2 EXPUNGE", "b4 OK EXPUNGE completed"], await b.UntilTaggedAsync("b4"));
        await b.SendAsync("b5 STORE 1 +FLAGS.SILENT (\\Flagged)\r\n");
        Assert.Equal("b5 OK STORE completed", (await b.UntilTaggedAsync("b5"))[^1]);

        // RFC 9051 §7.5.1: A's FETCH, STORE and SEARCH get no EXPUNGE, so A's sequence numbers still mean what they did.
        await a.SendAsync("a3 FETCH 1:3 (UID)\r\n");
        var fetch = await a.UntilTaggedAsync("a3");
        Assert.DoesNotContain(fetch, l => l.Contains("EXPUNGE", StringComparison.Ordinal));
        Assert.Contains("* 1 FETCH (UID 1)", fetch);
        Assert.Contains("* 3 FETCH (UID 3)", fetch);
        Assert.Equal("a3 OK FETCH completed", fetch[^1]);

        await a.SendAsync("a4 STORE 3 +FLAGS (\\Seen)\r\n");
        var store = await a.UntilTaggedAsync("a4");
        Assert.DoesNotContain(store, l => l.Contains("EXPUNGE", StringComparison.Ordinal));
        Assert.Contains("* 3 FETCH (FLAGS (\\Seen))", store);
        Assert.Equal("a4 OK STORE completed", store[^1]);

        await a.SendAsync("a5 SEARCH SEEN\r\n");
        var search = await a.UntilTaggedAsync("a5");
        Assert.DoesNotContain(search, l => l.Contains("EXPUNGE", StringComparison.Ordinal));
        Assert.Contains("* SEARCH 3", search);
        Assert.Equal("a5 OK SEARCH completed", search[^1]);

        // NOOP may: the expunge, then B's flags under the new numbering.
        await a.SendAsync("a6 NOOP\r\n");
        Assert.Equal(["* 2 EXPUNGE", "* 1 FETCH (FLAGS (\\Flagged) UID 1)", "a6 OK NOOP completed"], await a.UntilTaggedAsync("a6"));
        await a.SendAsync("a7 FETCH 2 (UID FLAGS)\r\n");
        Assert.Equal(["* 2 FETCH (UID 3 FLAGS (\\Seen))", "a7 OK FETCH completed"], await a.UntilTaggedAsync("a7"));
        Assert.Equal("a8 BAD Invalid message sequence number", await a.CommandAsync("a8 FETCH 3 (UID)"));
    }

    private static async Task<RawClient> LoggedInAsync(MailboxHost host, string tag)
    {
        var raw = await RawClient.ConnectAsync(host.Imap);
        await raw.LineAsync();
        Assert.StartsWith(tag + "1 OK", await raw.CommandAsync($"{tag}1 LOGIN {MailboxHost.User} \"{MailboxHost.Password}\""), StringComparison.Ordinal);
        await raw.SendAsync(tag + "2 SELECT INBOX\r\n");
        var select = await raw.UntilTaggedAsync(tag + "2");
        Assert.Contains("* 3 EXISTS", select);
        return raw;
    }
}
