using System.Globalization;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Search;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Testing.Hosting;
using MailMesh.Testing.Imap;
using MailMesh.Testing.Infrastructure;
using MimeKit;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// Issue 9, IMAP under concurrent sessions on different Mailbox replicas of the distributed mode (two in-process
/// replicas, each with its own RabbitMQ and PostgreSQL connections, over the real broker and database): a session idling
/// on replica 1 is told at once (untagged EXISTS, FETCH FLAGS, EXPUNGE) what a delivery, and a session on replica 2, did.
/// The wake crosses replicas by PostgreSQL LISTEN/NOTIFY on the mail store's channel; nothing polls.
/// </summary>
public sealed class MailboxReplicaTests
{
    private const string Domain = "mail.test";
    private const string HostName = "mx.mail.test";
    private const string User = "alice@" + Domain;
    private const string Password = "alice-password";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task IDLE_on_one_replica_sees_deliveries_flags_and_expunges_made_through_another()
    {
        await using var mesh = await Mesh.CreateWithMailboxDomainAsync(Domain, HostName);
        mesh.Settings["Mailbox:Users:0:Address"] = User;
        mesh.Settings["Mailbox:Users:0:PasswordHash"] = PasswordHash.Create(Password, PasswordHash.MinIterations);
        var imap = new[] { LoopbackPort.Free(), LoopbackPort.Free() };
        await mesh.StartAsync(MeshService.Queue);
        await mesh.StartAsync(MeshService.Policy);
        await mesh.StartAsync(MeshService.Dns);
        foreach (var port in imap)
        {
            await mesh.StartAsync(MeshService.Mailbox, new Dictionary<string, string> { ["Mailbox:ImapListen"] = "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture) });
        }

        await mesh.StartAsync(MeshService.Ingress);

        // A idles on replica 1, C on replica 2; B works on replica 2.
        using var a = await ImapSessions.ConnectAsync(imap[0], HostName, User, Password);
        using var b = await ImapSessions.ConnectAsync(imap[1], HostName, User, Password);
        using var c = await ImapSessions.ConnectAsync(imap[1], HostName, User, Password);
        foreach (var client in new[] { a, b, c })
        {
            await client.Inbox.OpenAsync(FolderAccess.ReadWrite);
            Assert.Equal(0, client.Inbox.Count);
        }

        var seenByA = new ImapSessions.Updates(a.Inbox);
        var seenByC = new ImapSessions.Updates(c.Inbox);
        using var done = new CancellationTokenSource();
        var idleA = a.IdleAsync(done.Token);
        var idleC = c.IdleAsync(done.Token);
        await ImapSessions.WaitForIdleAsync(a, Patience);
        await ImapSessions.WaitForIdleAsync(c, Patience);

        // 1. SMTP in: Queue hands the work item over RabbitMQ to whichever replica takes it; the sessions on both wake, so
        //    one of them was woken from the other replica.
        using (var smtp = new SmtpClient())
        {
            await smtp.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
            await smtp.SendAsync(new MimeMessage(
                [MailboxAddress.Parse("sender@" + Mesh.SenderDomain)], [MailboxAddress.Parse(User)], "by SMTP", new TextPart("plain") { Text = "one\r\n" }));
            await smtp.DisconnectAsync(quit: true);
        }

        Assert.Equal(1, await seenByA.Count.ReadAsync(n => n == 1, Patience));
        Assert.Equal(1, await seenByC.Count.ReadAsync(n => n == 1, Patience));

        // 2. Stored through replica 2 (B's APPEND): A on replica 1 sees EXISTS.
        await b.Inbox.AppendAsync(new MimeMessage(
            [MailboxAddress.Parse(User)], [MailboxAddress.Parse("bob@example.org")], "appended on replica 2", new TextPart("plain") { Text = "two\r\n" }));
        Assert.Equal(2, await seenByA.Count.ReadAsync(n => n == 2, Patience));

        // 3. B flags the first message on replica 2: A sees FETCH FLAGS for sequence number 1.
        await b.NoOpAsync();
        var uids = await b.Inbox.SearchAsync(SearchQuery.All);
        Assert.Equal(2, uids.Count);
        await b.Inbox.AddFlagsAsync(uids[0], MessageFlags.Flagged, silent: true);
        Assert.Equal((0, MessageFlags.Flagged), await seenByA.Flags.ReadAsync(f => f.Flags.HasFlag(MessageFlags.Flagged), Patience));

        // 4. B expunges it on replica 2: A sees EXPUNGE 1, and its numbering follows (one message left, the appended one).
        await b.Inbox.AddFlagsAsync(uids[0], MessageFlags.Deleted, silent: true);
        await b.Inbox.ExpungeAsync();
        Assert.Equal(0, await seenByA.Expunged.ReadAsync(_ => true, Patience));
        Assert.Equal(0, await seenByC.Expunged.ReadAsync(_ => true, Patience));

        await done.CancelAsync();
        await Task.WhenAll(idleA, idleC).WaitAsync(Patience);
        Assert.Equal(1, a.Inbox.Count);
        Assert.Equal([uids[1]], await a.Inbox.SearchAsync(SearchQuery.All));
        var summary = Assert.Single(await a.Inbox.FetchAsync(0, -1, MessageSummaryItems.Envelope | MessageSummaryItems.UniqueId));
        Assert.Equal("appended on replica 2", summary.Envelope?.Subject);
        await Task.WhenAll(a.DisconnectAsync(true), b.DisconnectAsync(true), c.DisconnectAsync(true));
    }
}
