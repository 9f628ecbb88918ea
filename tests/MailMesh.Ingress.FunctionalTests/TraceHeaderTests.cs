using System.Text;
using MailMesh.Contracts;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// Policy's trace header (Received-SPF, RFC 7208 §9.1) from RCPT is stored above our Received header, once per
/// transaction, and the HELO reaches Policy (the SPF identity for the null sender).
/// </summary>
public sealed class TraceHeaderTests
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;

    [Fact]
    public async Task Received_SPF_from_RCPT_is_stored_above_our_Received_header_once()
    {
        await using var host = await IngressHost.StartAsync();
        const string Trace = "Received-SPF: pass (mx.test.example: domain of sender@example.com designates 127.0.0.1 as permitted sender)\r\n"
            + "\tclient-ip=127.0.0.1; envelope-from=\"sender@example.com\"; helo=client.test;\r\n\treceiver=mx.test.example; identity=mailfrom\r\n";
        host.Policy.Recipient = request => PolicyDecision.Accept with { TraceHeader = Trace };

        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<sender@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<one@example.org>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<two@example.org>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        var queued = await client.CommandAsync("Subject: spf\r\n\r\nbody\r\n.");
        Assert.Equal(250, queued.Code);
        var id = Guid.Parse(queued.Lines[^1][(queued.Lines[^1].LastIndexOf(' ') + 1)..]);

        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        var content = Encoding.ASCII.GetString(stored!.Content.Span);
        Assert.StartsWith(Trace + "Received: from client.test ([127.0.0.1])\r\n", content, StringComparison.Ordinal);
        Assert.Equal(1, content.Split("Received-SPF:").Length - 1);
        Assert.EndsWith("\r\nSubject: spf\r\n\r\nbody\r\n", content, StringComparison.Ordinal);

        var asked = host.Policy.Asked.OfType<CheckRecipient>().ToList();
        Assert.All(asked, r => Assert.Equal("client.test", r.Helo));
    }
}
