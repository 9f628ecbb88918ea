using System.Text;
using MailKit;
using MailKit.Net.Imap;
using MailMesh.Testing.Dkim;
using MailMesh.Testing.Imap;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// Issue 10 inbound authentication in the real standalone process, as the final destination of a mailbox domain: the
/// client (127.0.0.1) is a stranger (relay networks are elsewhere), DKIM and DMARC are on, keys and DMARC records on the
/// test DNS server. A p=reject forgery is refused with 550 5.7.1, a p=quarantine one lands in \Junk, a signed message
/// reaches INBOX with dkim=pass and dmarc=pass in our Authentication-Results, and a forged one claiming our
/// authserv-id is gone. Read back over IMAP.
/// </summary>
public sealed class DmarcStandaloneTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly MailboxWorkspace _workspace = new();
    private readonly AuthenticationZones _zones = new();

    public void Dispose()
    {
        _zones.Dispose();
        _workspace.Dispose();
    }

    [Fact]
    public async Task Reject_is_refused_quarantine_lands_in_Junk_and_a_signed_message_is_delivered_with_dkim_and_dmarc_pass()
    {
        var (_, imapPort, settings) = _workspace.Destination("mail.test", "standalone.mail.test", "alice@mail.test", "alice-password");
        foreach (var (key, value) in _zones.PolicySettings("mx.mail.test"))
        {
            settings[key] = value;
        }

        await using var mailmesh = await StandaloneProcess.StartAsync(_workspace.NewDirectory("mailmesh-dmarc-"), settings);

        // p=reject, no signature, SPF for another domain: refused at the end of DATA.
        var refused = await RawSmtp.SendAsync(mailmesh.SmtpPort, "b@nodmarc.test", "alice@mail.test",
            Encoding.ASCII.GetBytes(AuthenticationZones.Message("ceo@bank.test", "alice@mail.test", "forged")));
        Assert.Equal(550, refused.Code);
        Assert.Contains("5.7.1", refused.Text, StringComparison.Ordinal);
        Assert.Contains("DMARC", refused.Text, StringComparison.Ordinal);

        // p=quarantine: accepted, for \Junk.
        var quarantined = await RawSmtp.SendAsync(mailmesh.SmtpPort, "b@nodmarc.test", "alice@mail.test",
            Encoding.ASCII.GetBytes(AuthenticationZones.Message("news@quarantine.test", "alice@mail.test", "quarantined")));
        Assert.Equal(250, quarantined.Code);

        // Signed by bank.test, with a forged Authentication-Results claiming our authserv-id above the signature.
        const string Forged = "Authentication-Results: mx.mail.test; dkim=pass header.d=paypal.example; dmarc=pass header.from=paypal.example\r\n";
        var signed = _zones.Sign(AuthenticationZones.Message("statements@bank.test", "alice@mail.test", "signed"), "bank.test");
        var delivered = await RawSmtp.SendAsync(mailmesh.SmtpPort, "bounces@bank.test", "alice@mail.test", [.. Encoding.ASCII.GetBytes(Forged), .. signed]);
        Assert.Equal(250, delivered.Code);

        using var imap = await ImapSessions.ConnectAsync(imapPort, "standalone.mail.test", "alice@mail.test", "alice-password");
        var inbox = await WaitForOneAsync(imap, imap.Inbox, () => mailmesh.Output);
        var junkFolder = await imap.GetFolderAsync("Junk");
        Assert.True(junkFolder.Attributes.HasFlag(FolderAttributes.Junk));
        var junk = await WaitForOneAsync(imap, junkFolder, () => mailmesh.Output);

        Assert.Contains("Subject: signed", inbox, StringComparison.Ordinal);
        Assert.Contains("Authentication-Results: mx.mail.test;\r\n", inbox, StringComparison.Ordinal);
        Assert.Contains("\tdkim=pass header.d=bank.test header.s=s1 header.i=@bank.test;\r\n", inbox, StringComparison.Ordinal);
        Assert.Contains("\tdmarc=pass (p=reject dis=none) header.from=bank.test\r\n", inbox, StringComparison.Ordinal);
        Assert.DoesNotContain("paypal.example", inbox, StringComparison.Ordinal);
        Assert.Equal(1, inbox.Split("Authentication-Results:").Length - 1);

        Assert.Contains("Subject: quarantined", junk, StringComparison.Ordinal);
        Assert.Contains("\tdmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.test\r\n", junk, StringComparison.Ordinal);
        Assert.Contains("\r\nX-MailMesh-Junk: dmarc p=quarantine quarantine.test\r\n", junk, StringComparison.Ordinal);
        await imap.DisconnectAsync(quit: true);
    }

    /// <summary>The folder's only message, once it has arrived (checked again with NOOP until <see cref="Patience"/>).</summary>
    private static async Task<string> WaitForOneAsync(ImapClient imap, IMailFolder folder, Func<string> diagnostics)
    {
        await folder.OpenAsync(FolderAccess.ReadOnly);
        var deadline = DateTime.UtcNow + Patience;
        while (folder.Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"nothing reached {folder.FullName}\n{diagnostics()}");
            await Task.Delay(200);
            await imap.NoOpAsync();
        }

        Assert.Equal(1, folder.Count);
        using var stream = await folder.GetStreamAsync(0, string.Empty);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        await folder.CloseAsync();
        return Encoding.UTF8.GetString(copy.ToArray());
    }
}
