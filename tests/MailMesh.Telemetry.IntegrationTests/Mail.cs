using MailKit.Net.Smtp;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using MimeKit;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>Sends test mail over SMTP and waits on the spool, the source of truth, for its outcome.</summary>
internal static class Mail
{
    public static MimeMessage New(string subject, params string[] to)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@" + TelemetryMesh.SenderDomain));
        foreach (var address in to)
        {
            message.To.Add(MailboxAddress.Parse(address));
        }

        message.Subject = subject;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(TelemetryMesh.SenderDomain);
        message.Body = new TextPart("plain") { Text = "telemetry\r\n" };
        return message;
    }

    /// <summary>Sends one message in its own SMTP session and returns the spool id from "250 2.0.0 Ok: queued as id".</summary>
    public static async Task<Guid> SendAsync(DistributedMesh mesh, MimeMessage message)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
        return Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
    }

    public static Task<MessageStatus> WaitForStateAsync(DistributedMesh mesh, Guid id, RecipientState state) =>
        WaitForAsync(mesh, id, s => s.Recipients.All(r => r.State == state));

    /// <summary>Polls the spool until the condition holds; fails after the patience runs out.</summary>
    public static Task<MessageStatus> WaitForAsync(DistributedMesh mesh, Guid id, Func<MessageStatus, bool> condition) =>
        mesh.WaitForStatusAsync(id, condition, TelemetryMesh.Patience);
}
