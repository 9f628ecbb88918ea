using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using IMailStore = MailMesh.Storage.IMailStore;
using MailKit.Net.Smtp;
using MailMesh.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Issue 9 in the zero-setup MailMesh: SMTP in for a user of a mailbox domain is stored in the user's INBOX (read back
/// through the store from the SQLite file, bytes compared with the spool's); the admin API shows the account's usage.
/// (Bad mailbox settings are rows of <see cref="StandaloneTests"/>' start-up theory.)
/// </summary>
public sealed class MailboxStandaloneTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly MailboxWorkspace _workspace = new();
    private readonly string _workingDirectory;

    public MailboxStandaloneTests() => _workingDirectory = _workspace.NewDirectory("mailmesh-standalone-mailbox-");

    public void Dispose() => _workspace.Dispose();

    /// <summary>A standalone final destination for mail.test, alice's password "alice-password", her quota 1,000,000.</summary>
    private MailboxDestination Destination()
    {
        var destination = _workspace.Destination("mail.test", "standalone.mail.test", "alice@mail.test", "alice-password");
        destination.Settings["Mailbox:Users:0:QuotaBytes"] = "1000000";
        return destination;
    }

    [Fact]
    public async Task Smtp_in_for_a_mailbox_user_is_stored_in_the_inbox_byte_for_byte()
    {
        await using var mailmesh = await StandaloneProcess.StartAsync(_workingDirectory, Destination().Settings);

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("app@origin.test"));
        message.To.Add(MailboxAddress.Parse("Alice@mail.test"));
        message.Subject = "to the mailbox";
        message.Body = new TextPart("plain") { Text = "kept until alice logs in\r\n" };
        Guid id;
        using (var client = new SmtpClient())
        {
            await client.ConnectAsync("127.0.0.1", mailmesh.SmtpPort, MailKit.Security.SecureSocketOptions.None);
            var reply = await client.SendAsync(message);
            id = Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
            await Assert.ThrowsAsync<SmtpCommandException>(() => client.SendAsync(new MimeMessage(
                [MailboxAddress.Parse("app@origin.test")], [MailboxAddress.Parse("nobody@mail.test")], "refused", new TextPart("plain") { Text = "x" })));
            await client.DisconnectAsync(quit: true);
        }

        using var http = TestKeys.Client(mailmesh.HttpPort, TestKeys.Admin);
        long used = 0;
        var deadline = DateTime.UtcNow + Patience;
        while (used == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the message never reached the mailbox");
            var account = await http.GetFromJsonAsync<JsonElement>("/api/v1/mailboxes/alice@mail.test");
            used = account.GetProperty("usedBytes").GetInt64();
            if (used == 0)
            {
                await Task.Delay(100);
            }
        }

        // The SQLite file, read as another process would: the stored message is this recipient's trace lines, then the
        // spool's bytes exactly.
        using var reader = ReadStore();
        var store = reader.Services.GetRequiredService<IMailStore>();
        var alice = await store.GetAccountAsync("alice@mail.test", CancellationToken.None);
        var inbox = await store.GetFolderAsync(alice!.Id, "INBOX", CancellationToken.None);
        var listed = Assert.Single(await store.ListMessagesAsync(alice.Id, inbox!.Id, 1, 10, CancellationToken.None));
        await using var stream = await store.OpenMessageAsync(alice.Id, inbox.Id, listed.Uid, CancellationToken.None);
        using var copy = new MemoryStream();
        await stream!.CopyToAsync(copy);
        var stored = copy.ToArray();
        Assert.Equal(used, stored.Length);

        var spooled = (await reader.Services.GetRequiredService<ISpool>().GetMessageAsync(id, CancellationToken.None))!.Content.ToArray();
        Assert.Equal(spooled, stored[^spooled.Length..]);
        Assert.Contains("kept until alice logs in", Encoding.UTF8.GetString(spooled), StringComparison.Ordinal);
        var text = Encoding.UTF8.GetString(stored);
        Assert.StartsWith("Return-Path: <app@origin.test>\r\nDelivered-To: Alice@mail.test\r\nReceived: by standalone.mail.test (MailMesh)", text, StringComparison.Ordinal);
    }

    /// <summary>
    /// The story's last hop: the message handed over SMTP is fetched by its user over IMAP (STARTTLS; woken from IDLE by
    /// the delivery, no polling) and POP3 (STLS) on the standalone listeners, the same bytes both ways.
    /// </summary>
    [Fact]
    public async Task Smtp_in_is_fetched_over_IMAP_and_POP3()
    {
        var (pop3Port, imapPort, settings) = Destination();
        await using var mailmesh = await StandaloneProcess.StartAsync(_workingDirectory, settings);

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("app@origin.test"));
        message.To.Add(MailboxAddress.Parse("alice@mail.test"));
        message.Subject = "fetch me";
        message.Body = new TextPart("plain") { Text = "kept until alice logs in\r\n.a dot line\r\n" };

        // IMAP: select INBOX before the message is sent and IDLE until it arrives (no polling).
        using var imap = await MailboxFetch.IdleInInboxAsync(imapPort, "standalone.mail.test", "alice@mail.test", "alice-password");

        using (var smtp = new SmtpClient())
        {
            await smtp.ConnectAsync("127.0.0.1", mailmesh.SmtpPort, MailKit.Security.SecureSocketOptions.None);
            await smtp.SendAsync(message);
            await smtp.DisconnectAsync(quit: true);
        }

        var viaImap = await imap.WaitForFirstMessageAsync(Patience, () => mailmesh.Output);

        // POP3 sees the same bytes; QUIT after DELE empties the maildrop.
        var viaPop3 = await MailboxFetch.RetrieveOnlyMessageOverPop3Async(pop3Port, "standalone.mail.test", "alice@mail.test", "alice-password", delete: true);

        Assert.Equal(viaImap, viaPop3);
        var text = System.Text.Encoding.UTF8.GetString(viaImap);
        Assert.StartsWith("Return-Path: <app@origin.test>\r\nDelivered-To: alice@mail.test\r\n", text, StringComparison.Ordinal);

        // The message as sent (MailKit's SMTP client sends CRLF and dot-stuffs; both fetches undid the stuffing).
        Assert.EndsWith("\r\n\r\nkept until alice logs in\r\n.a dot line\r\n", text, StringComparison.Ordinal);
        Assert.Contains("Subject: fetch me\r\n", text, StringComparison.Ordinal);
    }

    /// <summary>
    /// Debian's fetchmail, a real mail retrieval agent, fetches over POP3 (STLS) and over IMAP (STARTTLS) into an MDA
    /// (<c>cat &gt; file</c>) the bytes the mailbox serves. fetchmail's options are on the command line but for the
    /// password and <c>no stripcr</c>, which exist only as run-control keywords (a 0600 file in a private HOME);
    /// <c>--invisible</c> keeps fetchmail from adding its own Received line, <c>no stripcr</c> from turning CRLF into LF
    /// for the MDA. The certificate is the standalone's self-signed one, hence <c>--nosslcertck</c>.
    /// </summary>
    [Fact]
    public async Task Fetchmail_fetches_over_POP3_and_IMAP_with_STARTTLS_the_bytes_served()
    {
        var (pop3Port, imapPort, settings) = Destination();
        await using var mailmesh = await StandaloneProcess.StartAsync(_workingDirectory, settings);

        using var imap = await MailboxFetch.IdleInInboxAsync(imapPort, "standalone.mail.test", "alice@mail.test", "alice-password");
        using (var smtp = new SmtpClient())
        {
            await smtp.ConnectAsync("127.0.0.1", mailmesh.SmtpPort, MailKit.Security.SecureSocketOptions.None);
            await smtp.SendAsync(new MimeMessage(
                [MailboxAddress.Parse("app@origin.test")], [MailboxAddress.Parse("alice@mail.test")], "for fetchmail",
                new TextPart("plain") { Text = "fetched by fetchmail\r\n.a dot line\r\n" }));
            await smtp.DisconnectAsync(quit: true);
        }

        var served = await imap.WaitForFirstMessageAsync(Patience, () => mailmesh.Output);
        Assert.Contains("\r\n\r\nfetched by fetchmail\r\n.a dot line\r\n", Encoding.UTF8.GetString(served), StringComparison.Ordinal);

        var home = Directory.CreateDirectory(Path.Combine(_workingDirectory, "fetchmail-home"));
        var runControl = Path.Combine(home.FullName, "fetchmailrc");
        await File.WriteAllTextAsync(runControl, "poll 127.0.0.1 user \"alice@mail.test\" password \"alice-password\" no stripcr\n");
        if (!OperatingSystem.IsWindows())
        {
            // fetchmail refuses a run-control file that others may read (it holds a password).
            File.SetUnixFileMode(runControl, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        foreach (var (protocol, port) in new[] { ("POP3", pop3Port), ("IMAP", imapPort) })
        {
            var mailbox = Path.Combine(home.FullName, protocol + ".eml");
            var (exit, output) = await FetchmailAsync(home.FullName,
            [
                "-f", runControl, "-v", "--nosyslog", "--invisible", "-p", protocol, "-P", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--sslproto", "tls1.2+", "--nosslcertck", "--keep", "--all", "--mda", $"cat > {mailbox}", "127.0.0.1",
            ]);
            Assert.True(exit == 0, $"fetchmail ({protocol}) exited with {exit}:\n{output}");
            Assert.Contains("upgrade to TLS succeeded", output, StringComparison.Ordinal);
            Assert.Equal(served, await File.ReadAllBytesAsync(mailbox));
        }
    }

    private static async Task<(int ExitCode, string Output)> FetchmailAsync(string home, string[] arguments)
    {
        const string Fetchmail = "/usr/bin/fetchmail";
        Assert.True(File.Exists(Fetchmail), "fetchmail is not installed: this test needs the Debian package 'fetchmail' (./test.sh installs it through deploy/scripts/deps.sh with MAILMESH_TEST_TOOLS=1)");
        var start = new System.Diagnostics.ProcessStartInfo(Fetchmail) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["HOME"] = home;
        start.Environment["FETCHMAILHOME"] = home;
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException("fetchmail did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(Patience);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("fetchmail did not finish: " + await output + await error);
        }

        return (process.ExitCode, await output + await error);
    }

    private IHost ReadStore()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "sqlite",
            ["Storage:SqlitePath"] = Path.Combine(_workingDirectory, "data", "mailmesh.db"),
            ["Storage:MigrateOnStart"] = "false",
        });
        builder.AddMailMeshStorage();
        return builder.Build();
    }
}
