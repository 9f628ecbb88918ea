using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// Issue 11: an X-MailMesh-Pool header field picks the message's source-IP pool only when the submitter authenticated
/// (SMTP AUTH here); from an unauthenticated client it is stored as sent but no pool is recorded (Delivery removes the
/// field before sending either way).
/// </summary>
public sealed class PoolHeaderTests
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token;

    private static MimeMessage Message(string pool)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("app@example.com"));
        message.To.Add(MailboxAddress.Parse("rcpt@example.org"));
        message.Subject = "pool";
        message.Headers.Add("X-MailMesh-Pool", pool);
        message.Body = new TextPart("plain") { Text = "Hello\r\n" };
        return message;
    }

    [Fact]
    public async Task Only_an_authenticated_submitter_picks_the_pool_with_the_header()
    {
        await using var host = await IngressHost.StartAsync(SmtpExtensionTests.TlsSettings(new()));

        using (var client = new SmtpClient { ServerCertificateValidationCallback = TestCertificates.IsTestServer })
        {
            await client.ConnectAsync("127.0.0.1", host.SubmissionEndPoint.Port, SecureSocketOptions.StartTls, Timeout);
            await client.AuthenticateAsync(SmtpExtensionTests.User, SmtpExtensionTests.Password, Timeout);
            await client.SendAsync(Message("bulk"), Timeout);
            await client.SendAsync(Message("not a pool name"), Timeout);
            await client.DisconnectAsync(quit: true, Timeout);
        }

        using (var client = new SmtpClient())
        {
            await client.ConnectAsync("127.0.0.1", host.SmtpEndPoint.Port, SecureSocketOptions.None, Timeout);
            await client.SendAsync(Message("bulk"), Timeout);
            await client.DisconnectAsync(quit: true, Timeout);
        }

        var pools = new List<string?>();
        foreach (var id in host.Spool.Stored)
        {
            pools.Add((await host.Spool.Inner.GetMessageAsync(id, Timeout))!.Pool);
        }

        Assert.Equal(["bulk", null, null], pools);
    }
}
