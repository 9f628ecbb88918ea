using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.Ingress.FunctionalTests.Auth;

/// <summary>Over SMTP: a client that guesses is locked out, and the account's owner from another address still gets in.</summary>
public sealed class AuthLockoutTests
{
    [Fact]
    public async Task A_guessing_client_is_locked_out_but_the_account_owner_elsewhere_authenticates()
    {
        await using var host = await IngressHost.StartAsync(SmtpExtensionTests.TlsSettings(new()
        {
            ["Ingress:Auth:AllowPlaintext"] = "true",
            ["Ingress:Auth:MaxFailures"] = "3",
            ["Ingress:MaxErrorsPerSession"] = "20",
        }));
        static string Plain(string password) =>
            "AUTH PLAIN " + Convert.ToBase64String(Encoding.UTF8.GetBytes("\0" + SmtpExtensionTests.User + "\0" + password));

        await using (var attacker = await ConnectFromAsync(IPAddress.Parse("127.0.0.2"), host.SmtpEndPoint))
        {
            Assert.Equal(250, (await attacker.CommandAsync("EHLO attacker.test")).Code);
            Assert.Equal(535, (await attacker.CommandAsync(Plain("guess1"))).Code);
            Assert.Equal(535, (await attacker.CommandAsync(Plain("guess2"))).Code);
            Assert.Equal(454, (await attacker.CommandAsync(Plain("guess3"))).Code);
            Assert.Equal(454, (await attacker.CommandAsync(Plain(SmtpExtensionTests.Password))).Code);
        }

        // A new connection from the same address is still locked out, before any credentials are read.
        await using (var again = await ConnectFromAsync(IPAddress.Parse("127.0.0.2"), host.SmtpEndPoint))
        {
            Assert.Equal(250, (await again.CommandAsync("EHLO attacker.test")).Code);
            var locked = await again.CommandAsync("AUTH PLAIN");
            Assert.Equal(454, locked.Code);
            Assert.Equal("4.7.0", locked.Enhanced);
        }

        await using var owner = await ConnectFromAsync(IPAddress.Parse("127.0.0.3"), host.SmtpEndPoint);
        Assert.Equal(250, (await owner.CommandAsync("EHLO owner.test")).Code);
        Assert.Equal(235, (await owner.CommandAsync(Plain(SmtpExtensionTests.Password))).Code);
    }

    private static async Task<RawSmtpClient> ConnectFromAsync(IPAddress local, IPEndPoint server)
    {
        var tcp = new TcpClient(new IPEndPoint(local, 0));
        await tcp.ConnectAsync(server);
        var client = new RawSmtpClient(tcp);
        Assert.Equal(220, (await client.ReadReplyAsync()).Code);
        return client;
    }
}
