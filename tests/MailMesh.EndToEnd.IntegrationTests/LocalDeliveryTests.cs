using System.Text;
using MailKit.Net.Smtp;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// Issue 9, the distributed mode over real RabbitMQ and PostgreSQL: mail for a mailbox domain (Policy:MailboxDomains) is
/// checked at RCPT against the accounts, handed by Queue to the Mailbox service, stored once with Return-Path,
/// Delivered-To and Received, and reported delivered; a message with local and remote recipients goes both ways.
/// </summary>
public sealed class LocalDeliveryTests
{
    private const string MailboxDomain = "mail.test";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Smtp_in_for_local_and_remote_recipients_is_stored_in_the_mailboxes_and_delivered_by_mx()
    {
        await using var mesh = await Mesh.StartWithMailboxDomainAsync(MailboxDomain, "mx.mail.test", settings =>
        {
            settings["Mailbox:Users:0:Address"] = "alice@" + MailboxDomain;
            settings["Mailbox:Users:1:Address"] = "bob@" + MailboxDomain;
            settings["Mailbox:Aliases:0:Address"] = "info@" + MailboxDomain;
            settings["Mailbox:Aliases:0:Target"] = "bob@" + MailboxDomain;
        });

        // Nothing is accepted that cannot be stored: an unknown user is refused at RCPT.
        using (var refused = new SmtpClient())
        {
            await refused.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
            var error = await Assert.ThrowsAsync<SmtpCommandException>(() => refused.SendAsync(Message("nobody@" + MailboxDomain)));
            Assert.Equal(SmtpStatusCode.MailboxUnavailable, error.StatusCode);
            Assert.Contains("no such mailbox", error.Message, StringComparison.Ordinal);
        }

        using var client = new SmtpClient();
        await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        var reply = await client.SendAsync(Message("alice@" + MailboxDomain, "info@" + MailboxDomain, "carol@" + Mesh.DestinationDomain));
        await client.DisconnectAsync(quit: true);
        var id = Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);

        var status = await mesh.WaitForStatusAsync(id, s => s.Recipients.All(r => r.State == RecipientState.Delivered), Patience);
        Assert.Equal(3, status.Recipients.Count);
        var remote = Assert.Single(await mesh.Destination.WaitForMessagesAsync(1, Patience));
        Assert.Contains("carol@" + Mesh.DestinationDomain, remote.Recipients);

        // Read back through the store: the spool's bytes, after this recipient's own trace lines.
        var spooled = (await mesh.Spool.GetMessageAsync(id, CancellationToken.None))!.Content.ToArray();
        foreach (var (account, recipient) in new[] { ("alice@" + MailboxDomain, "alice@" + MailboxDomain), ("bob@" + MailboxDomain, "info@" + MailboxDomain) })
        {
            var stored = await Mesh.ReadOnlyMessageAsync(mesh, account, "INBOX");
            var text = Encoding.UTF8.GetString(stored);
            Assert.StartsWith("Return-Path: <sender@" + Mesh.SenderDomain + ">\r\nDelivered-To: " + recipient + "\r\nReceived: by mx.mail.test (MailMesh) with local id ", text, StringComparison.Ordinal);
            Assert.Equal(spooled, stored[^spooled.Length..]);
            var store = mesh.Host(MeshService.Mailbox).Services.GetRequiredService<IMailStore>();
            Assert.Equal(stored.Length, (await store.GetAccountAsync(account, CancellationToken.None))!.UsedBytes);
        }
    }

    private static MimeMessage Message(params string[] recipients)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@" + Mesh.SenderDomain));
        foreach (var recipient in recipients)
        {
            message.To.Add(MailboxAddress.Parse(recipient));
        }

        message.Subject = "local delivery";
        message.Body = new TextPart("plain") { Text = "to the mailbox\r\n" };
        return message;
    }
}
