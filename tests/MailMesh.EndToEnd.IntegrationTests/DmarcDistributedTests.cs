using System.Text;
using MailMesh.Storage;
using MailMesh.Testing.Dkim;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// Issue 10 inbound authentication in the distributed mode (real RabbitMQ and PostgreSQL): Ingress checks DKIM and
/// DMARC at the end of DATA, the Mailbox service stores what DMARC quarantines in the account's \Junk folder. A p=reject
/// forgery is refused with 550 5.7.1; a signed message reaches INBOX with dkim=pass and dmarc=pass and without the
/// forged Authentication-Results that claimed our authserv-id.
/// </summary>
public sealed class DmarcDistributedTests
{
    private const string MailboxDomain = "mail.test";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Reject_is_refused_quarantine_is_stored_in_Junk_and_a_signed_message_in_INBOX()
    {
        using var zones = new AuthenticationZones();
        await using var mesh = await Mesh.StartWithMailboxDomainAsync(MailboxDomain, "mx.mail.test", settings =>
        {
            settings["Mailbox:Users:0:Address"] = "alice@" + MailboxDomain;
            foreach (var (key, value) in zones.PolicySettings("mx.mail.test"))
            {
                settings[key] = value;
            }
        });
        var port = mesh.Smtp.Port;

        var refused = await RawSmtp.SendAsync(port, "b@nodmarc.test", "alice@" + MailboxDomain,
            Encoding.ASCII.GetBytes(AuthenticationZones.Message("ceo@bank.test", "alice@" + MailboxDomain, "forged")));
        Assert.Equal(550, refused.Code);
        Assert.Contains("5.7.1", refused.Text, StringComparison.Ordinal);

        var quarantined = await RawSmtp.SendAsync(port, "b@nodmarc.test", "alice@" + MailboxDomain,
            Encoding.ASCII.GetBytes(AuthenticationZones.Message("news@quarantine.test", "alice@" + MailboxDomain, "quarantined")));
        Assert.Equal(250, quarantined.Code);

        const string Forged = "Authentication-Results: mx.mail.test; dmarc=pass header.from=paypal.example\r\n";
        var signed = zones.Sign(AuthenticationZones.Message("statements@bank.test", "alice@" + MailboxDomain, "signed"), "bank.test");
        var delivered = await RawSmtp.SendAsync(port, "bounces@bank.test", "alice@" + MailboxDomain, [.. Encoding.ASCII.GetBytes(Forged), .. signed]);
        Assert.Equal(250, delivered.Code);

        foreach (var reply in new[] { quarantined.Text, delivered.Text })
        {
            var id = Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
            await mesh.WaitForStatusAsync(id, s => s.Recipients.All(r => r.State == RecipientState.Delivered), Patience);
        }

        var inbox = Encoding.UTF8.GetString(await Mesh.ReadOnlyMessageAsync(mesh, "alice@" + MailboxDomain, "INBOX"));
        var junk = Encoding.UTF8.GetString(await Mesh.ReadOnlyMessageAsync(mesh, "alice@" + MailboxDomain, "Junk"));

        Assert.Contains("Subject: signed", inbox, StringComparison.Ordinal);
        Assert.Contains("\r\nAuthentication-Results: mx.mail.test;\r\n", inbox, StringComparison.Ordinal);
        Assert.Contains("\tdkim=pass header.d=bank.test header.s=s1 header.i=@bank.test;\r\n", inbox, StringComparison.Ordinal);
        Assert.Contains("\tdmarc=pass (p=reject dis=none) header.from=bank.test\r\n", inbox, StringComparison.Ordinal);
        Assert.DoesNotContain("paypal.example", inbox, StringComparison.Ordinal);

        Assert.Contains("Subject: quarantined", junk, StringComparison.Ordinal);
        Assert.Contains("\tdmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.test\r\n", junk, StringComparison.Ordinal);
    }
}
