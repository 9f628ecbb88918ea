using System.Net.Sockets;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>Connection limits, early talkers, improper pipelining and slow senders.</summary>
public sealed class AbuseLimitTests
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token;

    [Fact]
    public async Task Connections_over_the_per_IP_limit_get_421_and_are_closed()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxConnectionsPerIp"] = "2" });
        await using var first = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        await using var second = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        await using (var third = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint, readGreeting: false))
        {
            var refused = await third.ReadReplyAsync();
            Assert.Equal(421, refused.Code);
            Assert.Equal("4.7.0", refused.Enhanced);
            Assert.True(await third.IsClosedAsync());
        }

        // A slot frees when a session ends.
        Assert.Equal(221, (await first.CommandAsync("QUIT")).Code);
        Assert.True(await first.IsClosedAsync());
        await using var fourth = await ConnectWhenFreeAsync(host);
        Assert.Equal(250, (await fourth.CommandAsync("NOOP")).Code);
    }

    private static async Task<RawSmtpClient> ConnectWhenFreeAsync(IngressHost host)
    {
        // The server releases the slot just after closing; retry on the 421 (bounded), never sleep blindly.
        for (var attempt = 0; ; attempt++)
        {
            var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint, readGreeting: false);
            var reply = await client.ReadReplyAsync();
            if (reply.Code == 220 || attempt == 50)
            {
                Assert.Equal(220, reply.Code);
                return client;
            }

            await client.DisposeAsync();
            await Task.Yield();
        }
    }

    [Fact]
    public async Task An_early_talker_gets_554_and_is_disconnected()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:GreetWait"] = "00:00:05" });
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint, readGreeting: false);
        await client.SendAsync("EHLO spambot.test\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.Equal(554, reply.Code);
        Assert.Equal("5.5.0", reply.Enhanced);
        Assert.True(await client.IsClosedAsync());
    }

    [Fact]
    public async Task Content_sent_before_the_354_is_improper_pipelining()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        await client.SendAsync("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(354, (await client.ReadReplyAsync()).Code);
        var reply = await client.ReadReplyAsync();
        Assert.Equal(554, reply.Code);
        Assert.Equal("5.5.0", reply.Enhanced);
        Assert.True(await client.IsClosedAsync());
        Assert.True(host.Spool.Stored.IsEmpty);
    }

    [Theory]
    [InlineData("EHLO client.test")]
    [InlineData("HELO client.test")]
    [InlineData("NOOP")]
    public async Task Commands_pipelined_after_a_group_ending_command_are_improper_pipelining(string first)
    {
        // RFC 2920 §3.1: EHLO, NOOP, VRFY and EXPN end a group; after HELO there is no PIPELINING at all.
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        await client.SendAsync(first + "\r\nMAIL FROM:<a@example.com>\r\n");
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        var reply = await client.ReadReplyAsync();
        Assert.Equal(554, reply.Code);
        Assert.Equal("5.5.0", reply.Enhanced);
        Assert.True(await client.IsClosedAsync());
    }

    [Fact]
    public async Task A_sender_below_the_minimum_data_rate_gets_421_4_4_2()
    {
        await using var host = await IngressHost.StartAsync(new()
        {
            ["Ingress:MinDataRate"] = "100000",
            ["Ingress:MinDataRateGracePeriod"] = "00:00:01",
        });
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync("Subject: slow\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.Equal(421, reply.Code);
        Assert.Equal("4.4.2", reply.Enhanced);
        Assert.True(await client.IsClosedAsync());
    }

    [Fact]
    public async Task Recipients_over_the_limit_get_452()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxRecipients"] = "100" });
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        await client.SendAsync(string.Concat(Enumerable.Range(0, 101).Select(i => $"RCPT TO:<r{i}@example.org>\r\n")));
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        }

        var over = await client.ReadReplyAsync();
        Assert.Equal(452, over.Code);
        Assert.Equal("4.5.3", over.Enhanced);
    }

    [Fact]
    public async Task A_thousand_idle_connections_do_not_stop_a_new_client()
    {
        await using var host = await IngressHost.StartAsync(new()
        {
            ["Ingress:MaxConnections"] = "1100",
            ["Ingress:MaxConnectionsPerIp"] = "1100",
        });
        var idle = new List<TcpClient>(1000);
        try
        {
            for (var i = 0; i < 1000; i++)
            {
                var tcp = new TcpClient();
                await tcp.ConnectAsync(host.SmtpEndPoint, Timeout);
                idle.Add(tcp);
            }

            using var client = new SmtpClient { LocalDomain = "client.test" };
            await client.ConnectAsync("127.0.0.1", host.SmtpEndPoint.Port, SecureSocketOptions.None, Timeout);
            var message = new MimeMessage();
            message.From.Add(MailboxAddress.Parse("sender@example.com"));
            message.To.Add(MailboxAddress.Parse("rcpt@example.org"));
            message.Subject = "busy";
            message.Body = new TextPart("plain") { Text = "still served\r\n" };
            var response = await client.SendAsync(message, Timeout);
            await client.DisconnectAsync(quit: true, Timeout);
            Assert.Contains("queued as ", response, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var tcp in idle)
            {
                tcp.Dispose();
            }
        }
    }
}
