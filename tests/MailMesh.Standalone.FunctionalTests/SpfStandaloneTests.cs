using System.Globalization;
using MailKit.Net.Smtp;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Smtp;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// SPF (RFC 7208) over SMTP into the real process: the client (127.0.0.1) is not a relay client here (relay networks are
/// elsewhere), so mail for the local domain is checked against the sender's SPF record on the test DNS server.
/// </summary>
public sealed class SpfStandaloneTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly RelayBench _bench = new("mailmesh-spf-");

    public Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1")
            .AddTxt("spf-pass.test", "v=spf1 ip4:127.0.0.0/8 -all")
            .AddTxt("spf-fail.test", "v=spf1 ip4:192.0.2.1 -all");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _bench.DisposeAsync();

    [Fact]
    public async Task A_fail_is_refused_with_5_7_23_and_a_pass_is_delivered_with_Received_SPF()
    {
        var settings = _bench.Settings();
        settings["Policy:RelayNetworks"] = "192.0.2.0/24";
        settings["Policy:LocalDomains"] = "dest.test";
        settings["Policy:Spf:Enabled"] = "true";
        settings["Policy:Spf:FailAction"] = "reject";
        settings["Policy:Spf:AuthServId"] = "mx.mailmesh.test";
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);

        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mailmesh.SmtpPort, "forger@spf-fail.test"));
        Assert.Equal(SmtpStatusCode.MailboxUnavailable, refused.StatusCode);
        Assert.Contains("5.7.23", refused.Message + " " + refused.ErrorCode, StringComparison.Ordinal);

        await SendAsync(mailmesh.SmtpPort, "app@spf-pass.test");
        var delivered = await _bench.Sink.WaitForMessagesAsync(1, Patience);
        Assert.Single(delivered);
        var text = delivered[0].DataText;
        Assert.StartsWith("Received-SPF: pass (mx.mailmesh.test: domain of app@spf-pass.test designates 127.0.0.1 as permitted sender)\r\n", text, StringComparison.Ordinal);
        Assert.Contains("\r\nReceived: from ", text, StringComparison.Ordinal);
        Assert.True(text.IndexOf("Received-SPF:", StringComparison.Ordinal) < text.IndexOf("\r\nReceived: from", StringComparison.Ordinal));
    }

    private static async Task SendAsync(int port, string from)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse("user@dest.test"));
        message.Subject = "spf";
        message.Body = new TextPart("plain") { Text = "spf\r\n" };
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, MailKit.Security.SecureSocketOptions.None);
        try
        {
            await client.SendAsync(message);
        }
        finally
        {
            await client.DisconnectAsync(quit: true);
        }
    }
}
