using System.Net;
using System.Net.Http.Headers;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailMesh.Ingress.FunctionalTests.Http;
using MimeKit;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// An authenticated account may send only as the From domains it is given (SenderDomains), because Delivery signs
/// with DKIM for the From domain: another domain is refused at the end of data (550 5.7.1) or at submit (403).
/// </summary>
public sealed class SenderDomainTests
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token;

    private static MimeMessage Message(string from)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse("rcpt@example.org"));
        message.Subject = "hello";
        message.Body = new TextPart("plain") { Text = "Hello\r\n" };
        return message;
    }

    [Fact]
    public async Task An_SMTP_account_sends_as_its_domains_and_their_subdomains_only()
    {
        await using var host = await IngressHost.StartAsync(SmtpExtensionTests.TlsSettings(new()
        {
            ["Ingress:Auth:Users:0:SenderDomains"] = "example.com, shop.test",
        }));
        using var client = new SmtpClient { ServerCertificateValidationCallback = TestCertificates.IsTestServer };
        await client.ConnectAsync("127.0.0.1", host.SubmissionEndPoint.Port, SecureSocketOptions.StartTls, Timeout);
        await client.AuthenticateAsync(SmtpExtensionTests.User, SmtpExtensionTests.Password, Timeout);

        await client.SendAsync(Message("app@example.com"), Timeout);
        await client.SendAsync(Message("news@mail.shop.test"), Timeout);

        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => client.SendAsync(Message("ceo@bank.test"), Timeout));
        Assert.Equal(550, (int)refused.StatusCode);
        Assert.Contains("Sender domain bank.test is not allowed for this account", refused.Message, StringComparison.Ordinal);

        // A look-alike is not a sub-domain.
        await Assert.ThrowsAsync<SmtpCommandException>(() => client.SendAsync(Message("x@badexample.com"), Timeout));
        await client.DisconnectAsync(quit: true, Timeout);
    }

    [Fact]
    public async Task An_API_key_with_sender_domains_gets_403_for_another_From_domain()
    {
        await using var host = await HttpApiHost.StartAsync(new() { ["Ingress:Api:Keys:0:SenderDomains"] = "example.com" });
        using var client = host.CreateClient();

        var allowed = await client.PostAsync("/api/v1/messages", Raw("From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\r\nx\r\n"), Timeout);
        Assert.Equal(HttpStatusCode.Accepted, allowed.StatusCode);

        var refused = await client.PostAsync("/api/v1/messages", Raw("From: a@forged.test\r\nTo: b@example.org\r\nSubject: x\r\n\r\nx\r\n"), Timeout);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.Contains("forged.test", await refused.Content.ReadAsStringAsync(Timeout), StringComparison.Ordinal);

        // The other key has no list: any From domain, as before.
        using var other = host.CreateClient(HttpApiHost.OtherKey);
        Assert.Equal(HttpStatusCode.Accepted, (await other.PostAsync("/api/v1/messages", Raw("From: a@forged.test\r\nTo: b@example.org\r\nSubject: x\r\n\r\nx\r\n"), Timeout)).StatusCode);
    }

    private static ByteArrayContent Raw(string message)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(message));
        content.Headers.ContentType = new MediaTypeHeaderValue("message/rfc822");
        return content;
    }
}
