using System.Text;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// No open relay: every address trick is refused for a client that is neither in Policy:RelayNetworks nor
/// authenticated, decided by the real Policy consumers; what Policy checked is exactly what would be stored.
/// </summary>
public sealed class OpenRelayTests : IAsyncLifetime
{
    private IngressHost _host = null!;

    public async Task InitializeAsync() => _host = await IngressHost.StartAsync(
        SmtpExtensionTests.TlsSettings(new()
        {
            ["Policy:RelayNetworks"] = "192.0.2.0/24",
            ["Policy:LocalDomains"] = "allowed.test,xn--bcher-kva.test",
            ["Ingress:Auth:AllowPlaintext"] = "true",
            ["Ingress:MaxErrorsPerSession"] = "100",
        }),
        realPolicy: true);

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Theory]
    [InlineData("<user%victim.com@allowed.test>")]
    [InlineData("<@allowed.test,@victim.com:user@victim.com>")]
    [InlineData("<victim.com!user@allowed.test>")]
    [InlineData("<\"user@victim.com\"@allowed.test>")]
    [InlineData("<user@[192.0.2.1]>")]
    [InlineData("<user@victim.com.>")]
    [InlineData("<user@victim.com>")]
    [InlineData("<USER@VICTIM.COM>")]
    [InlineData("<user@allowed.test.victim.com>")]
    [InlineData("<user@vіctim.com>")] // Cyrillic і: a different domain, not a spelling of an allowed one.
    [InlineData("<user@аllowed.test>")] // Cyrillic а: an IDN homograph of the local domain.
    [InlineData("<user@xn--llowed-3xf.test>")]
    public async Task Address_tricks_are_refused_for_an_unauthorised_client(string path)
    {
        await using var client = await RawSmtpClient.ConnectAsync(_host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> SMTPUTF8")).Code);
        await client.SendUtf8Async("RCPT TO:" + path + "\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.True(reply.Code >= 500, $"RCPT TO:{path} was answered {reply}");
    }

    [Theory]
    [InlineData("<user@allowed.test>", "user@allowed.test")]
    [InlineData("<User@ALLOWED.TEST>", "User@allowed.test")]
    [InlineData("<user@BÜCHER.test>", "user@xn--bcher-kva.test")]
    [InlineData("<user@xn--bcher-kva.test>", "user@xn--bcher-kva.test")]
    public async Task Local_domains_are_accepted_and_stored_exactly_as_Policy_checked(string path, string stored)
    {
        await using var client = await RawSmtpClient.ConnectAsync(_host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> SMTPUTF8")).Code);
        await client.SendUtf8Async("RCPT TO:" + path + "\r\n");
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        var reply = await client.CommandAsync("Subject: x\r\n\r\nbody\r\n.");
        Assert.Equal(250, reply.Code);
        var id = Guid.Parse(reply.Lines[^1][(reply.Lines[^1].LastIndexOf(' ') + 1)..]);
        var status = await _host.Spool.GetStatusAsync(id, CancellationToken.None);
        Assert.Equal(stored, status!.Recipients.Single().Address);
    }

    [Fact]
    public async Task An_authenticated_client_may_relay()
    {
        await using var client = await RawSmtpClient.ConnectAsync(_host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.True((await client.CommandAsync("RCPT TO:<user@victim.com>")).Code >= 500);
        Assert.Equal(250, (await client.CommandAsync("RSET")).Code);
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes("\0" + SmtpExtensionTests.User + "\0" + SmtpExtensionTests.Password));
        Assert.Equal(235, (await client.CommandAsync("AUTH PLAIN " + auth)).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<user@victim.com>")).Code);
    }
}
