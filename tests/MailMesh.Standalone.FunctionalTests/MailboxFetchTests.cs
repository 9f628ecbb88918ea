using MailKit;
using MailKit.Net.Imap;
using MailKit.Net.Pop3;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Infrastructure;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Issue 9's story in the zero-setup MailMesh: a message handed over SMTP to a user of a mailbox domain is fetched by
/// that user over IMAP (STARTTLS) and POP3 (STLS) on the standalone listeners, the same bytes both ways, ending with the
/// message as sent.
/// </summary>
public sealed class MailboxFetchTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly DirectoryInfo _workingDirectory = Directory.CreateTempSubdirectory("mailmesh-standalone-fetch-");
    private TestDnsServer _dns = null!;

    public Task InitializeAsync()
    {
        _dns = TestDnsServer.Start();
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        _dns.Dispose();
        _workingDirectory.Delete(recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Smtp_in_is_fetched_over_IMAP_and_POP3()
    {
        var pop3Port = LoopbackPort.Free();
        var imapPort = LoopbackPort.Free();
        var settings = new Dictionary<string, string>
        {
            ["Dns:Servers"] = _dns.EndPoint.ToString(),
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Policy:MailboxDomains"] = "mail.test",
            ["Mailbox:HostName"] = "standalone.mail.test",
            ["Mailbox:Users:0:Address"] = "alice@mail.test",
            ["Mailbox:Users:0:PasswordHash"] = PasswordHash.Create("alice-password", PasswordHash.MinIterations),
            ["Mailbox:Pop3Listen"] = $"127.0.0.1:{pop3Port}",
            ["Mailbox:ImapListen"] = $"127.0.0.1:{imapPort}",
        };
        await using var mailmesh = await StandaloneProcess.StartAsync(_workingDirectory.FullName, settings);

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("app@origin.test"));
        message.To.Add(MailboxAddress.Parse("alice@mail.test"));
        message.Subject = "fetch me";
        message.Body = new TextPart("plain") { Text = "kept until alice logs in\r\n.a dot line\r\n" };

        // IMAP: select INBOX before the message is sent and IDLE until it arrives (no polling).
        using var imap = new ImapClient { ServerCertificateValidationCallback = (_, certificate, _, _) => certificate?.Subject == "CN=standalone.mail.test" };
        await imap.ConnectAsync("127.0.0.1", imapPort, SecureSocketOptions.StartTls);
        await imap.AuthenticateAsync("alice@mail.test", "alice-password");
        await imap.Inbox.OpenAsync(FolderAccess.ReadWrite);
        Assert.Equal(0, imap.Inbox.Count);
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        imap.Inbox.CountChanged += (_, _) => arrived.TrySetResult();
        using var stopIdle = new CancellationTokenSource();
        var idle = imap.IdleAsync(stopIdle.Token);

        using (var smtp = new SmtpClient())
        {
            await smtp.ConnectAsync("127.0.0.1", mailmesh.SmtpPort, SecureSocketOptions.None);
            await smtp.SendAsync(message);
            await smtp.DisconnectAsync(quit: true);
        }

        await arrived.Task.WaitAsync(Patience);
        await stopIdle.CancelAsync();
        await idle.WaitAsync(Patience);
        var uid = (await imap.Inbox.FetchAsync(0, 0, MessageSummaryItems.UniqueId))[0].UniqueId;
        byte[] viaImap;
        await using (var stream = await imap.Inbox.GetStreamAsync(uid, string.Empty))
        {
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            viaImap = copy.ToArray();
        }

        await imap.DisconnectAsync(quit: true);

        // POP3 sees the same bytes; QUIT after DELE empties the maildrop.
        using var pop3 = new Pop3Client { ServerCertificateValidationCallback = (_, certificate, _, _) => certificate?.Subject == "CN=standalone.mail.test" };
        await pop3.ConnectAsync("127.0.0.1", pop3Port, SecureSocketOptions.StartTls);
        await pop3.AuthenticateAsync("alice@mail.test", "alice-password");
        Assert.Equal(1, pop3.Count);
        byte[] viaPop3;
        await using (var stream = await pop3.GetStreamAsync(0))
        {
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            viaPop3 = copy.ToArray();
        }

        await pop3.DeleteMessageAsync(0);
        await pop3.DisconnectAsync(quit: true);

        Assert.Equal(viaImap, viaPop3);
        var text = System.Text.Encoding.UTF8.GetString(viaImap);
        Assert.StartsWith("Return-Path: <app@origin.test>\r\nDelivered-To: alice@mail.test\r\n", text, StringComparison.Ordinal);

        // The message as sent (MailKit's SMTP client sends CRLF and dot-stuffs; both fetches undid the stuffing).
        Assert.EndsWith("\r\n\r\nkept until alice logs in\r\n.a dot line\r\n", text, StringComparison.Ordinal);
        Assert.Contains("Subject: fetch me\r\n", text, StringComparison.Ordinal);
    }
}
