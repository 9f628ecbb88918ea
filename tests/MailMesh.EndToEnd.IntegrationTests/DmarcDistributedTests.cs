using System.Text;
using MailMesh.Storage;
using MailMesh.Testing.Dkim;
using MailMesh.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

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
        await using var mesh = await Mesh.CreateWithMailboxDomainAsync(MailboxDomain, "mx.mail.test");
        mesh.Settings["Mailbox:Users:0:Address"] = "alice@" + MailboxDomain;
        mesh.Settings["Policy:RelayNetworks"] = "192.0.2.0/24";
        mesh.Settings["Policy:AuthServId"] = "mx.mail.test";
        mesh.Settings["Policy:Dkim:Enabled"] = "true";
        mesh.Settings["Policy:Dkim:DnsServers"] = zones.Servers;
        mesh.Settings["Policy:Spf:DnsServers"] = zones.Servers;
        mesh.Settings["Policy:Dmarc:Enabled"] = "true";
        await mesh.StartAsync(MeshService.Queue);
        await mesh.StartAsync(MeshService.Policy);
        await mesh.StartAsync(MeshService.Dns);
        await mesh.StartAsync(MeshService.Delivery);
        await mesh.StartAsync(MeshService.Mailbox);
        await mesh.StartAsync(MeshService.Ingress);
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

        var store = mesh.Host(MeshService.Mailbox).Services.GetRequiredService<IMailStore>();
        var inbox = await ReadOnlyMessageAsync(store, "INBOX");
        var junk = await ReadOnlyMessageAsync(store, "Junk");

        Assert.Contains("Subject: signed", inbox, StringComparison.Ordinal);
        Assert.Contains("\r\nAuthentication-Results: mx.mail.test;\r\n", inbox, StringComparison.Ordinal);
        Assert.Contains("\tdkim=pass header.d=bank.test header.s=s1 header.i=@bank.test;\r\n", inbox, StringComparison.Ordinal);
        Assert.Contains("\tdmarc=pass (p=reject dis=none) header.from=bank.test\r\n", inbox, StringComparison.Ordinal);
        Assert.DoesNotContain("paypal.example", inbox, StringComparison.Ordinal);

        Assert.Contains("Subject: quarantined", junk, StringComparison.Ordinal);
        Assert.Contains("\tdmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.test\r\n", junk, StringComparison.Ordinal);
    }

    private static async Task<string> ReadOnlyMessageAsync(IMailStore store, string folderName)
    {
        var account = await store.GetAccountAsync("alice@" + MailboxDomain, CancellationToken.None);
        var folder = await store.GetFolderAsync(account!.Id, folderName, CancellationToken.None);
        var message = Assert.Single(await store.ListMessagesAsync(account.Id, folder!.Id, 1, 10, CancellationToken.None));
        await using var stream = await store.OpenMessageAsync(account.Id, folder.Id, message.Uid, CancellationToken.None);
        using var copy = new MemoryStream();
        await stream!.CopyToAsync(copy);
        return Encoding.UTF8.GetString(copy.ToArray());
    }
}
