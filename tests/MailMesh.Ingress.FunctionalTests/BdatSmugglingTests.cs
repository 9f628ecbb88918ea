using System.Text;
using MailMesh.Contracts;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// Issue 7 §2, SMTP smuggling through a refused BDAT: whatever the reply to "BDAT n", its n octets are read as data
/// and discarded (RFC 3030 §2), never parsed as commands. Each test pipelines a refused BDAT whose chunk holds a whole
/// transaction (RSET / MAIL / RCPT / BDAT ... LAST), then QUIT: the refusal must be the only reply before 221, and
/// nothing may be checked, stored or announced for the forged transaction.
/// </summary>
public sealed class BdatSmugglingTests
{
    private const string Forged =
        "RSET\r\nMAIL FROM:<anyone@forged.example>\r\nRCPT TO:<victim@anywhere.example>\r\nBDAT 30 LAST\r\nSubject: forged\r\n\r\nsmuggled!\r\n";

    /// <summary>"BDAT n" whose chunk is the forged transaction (and padding), pipelined in one write, optionally as LAST.</summary>
    private static string RefusedBdat(bool last = true, int padding = 0)
    {
        var chunk = Forged + new string('x', padding);
        return "BDAT " + Encoding.Latin1.GetByteCount(chunk) + (last ? " LAST" : string.Empty) + "\r\n" + chunk;
    }

    private static async Task AssertOnlyReplyThenQuitAsync(IngressHost host, RawSmtpClient client, int code, string enhanced)
    {
        var refusal = await client.ReadReplyAsync();
        Assert.Equal(code, refusal.Code);
        Assert.Equal(enhanced, refusal.Enhanced);

        // If the chunk had been parsed, RSET's 250 (and more) would come before QUIT's 221.
        Assert.Equal(221, (await client.CommandAsync("QUIT")).Code);
        Assert.True(await client.IsClosedAsync());
        AssertNothingForged(host);
    }

    private static void AssertNothingForged(IngressHost host)
    {
        Assert.True(host.Spool.Stored.IsEmpty);
        Assert.True(host.Announcements.Received.IsEmpty);
        Assert.DoesNotContain(host.Policy.Asked.OfType<CheckRecipient>(), r => r.Recipient.Contains("victim", StringComparison.Ordinal));
    }

    private static async Task<RawSmtpClient> EhloAsync(IngressHost host)
    {
        var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        return client;
    }

    [Fact]
    public async Task Refused_BDAT_without_a_transaction_discards_its_chunk()
    {
        // The issue's reproduction: no MAIL yet, a BDAT whose chunk holds a whole transaction.
        await using var host = await IngressHost.StartAsync();
        await using var client = await EhloAsync(host);
        await client.SendAsync(RefusedBdat());
        await AssertOnlyReplyThenQuitAsync(host, client, 503, "5.5.1");
    }

    [Fact]
    public async Task Refused_BDAT_before_EHLO_discards_its_chunk()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        await client.SendAsync(RefusedBdat());
        await AssertOnlyReplyThenQuitAsync(host, client, 503, "5.5.1");
    }

    [Fact]
    public async Task BDAT_after_HELO_is_not_implemented_and_its_chunk_is_discarded()
    {
        // CHUNKING is not offered to a HELO client (RFC 5321 §4.2.4: 502), but the octets are still skipped.
        await using var host = await IngressHost.StartAsync();
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("HELO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        await client.SendAsync(RefusedBdat());
        await AssertOnlyReplyThenQuitAsync(host, client, 502, "5.5.1");
    }

    [Fact]
    public async Task Refused_BDAT_with_no_accepted_recipient_discards_its_chunk()
    {
        // RFC 2920 §3.1 / RFC 5321 §3.3: a pipelined MAIL / refused RCPT / BDAT gets 554 "no valid recipients".
        await using var host = await IngressHost.StartAsync();
        host.Policy.Recipient = r => r.Recipient.StartsWith("refused@", StringComparison.Ordinal)
            ? new PolicyDecision { Accepted = false, ReplyCode = 550, EnhancedCode = "5.7.1", Reason = "Relay access denied" }
            : PolicyDecision.Accept;
        await using var client = await EhloAsync(host);
        await client.SendAsync("MAIL FROM:<a@example.com>\r\nRCPT TO:<refused@elsewhere.example>\r\n" + RefusedBdat());
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(550, (await client.ReadReplyAsync()).Code);
        await AssertOnlyReplyThenQuitAsync(host, client, 554, "5.5.1");
    }

    [Fact]
    public async Task Refused_BDAT_after_RSET_discards_its_chunk()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await EhloAsync(host);
        await client.SendAsync("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRSET\r\n" + RefusedBdat(last: false));
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        await AssertOnlyReplyThenQuitAsync(host, client, 503, "5.5.1");
    }

    [Fact]
    public async Task Refused_BDAT_after_a_refused_DATA_discards_its_chunk()
    {
        await using var host = await IngressHost.StartAsync();
        host.Policy.Recipient = _ => new PolicyDecision { Accepted = false, ReplyCode = 550, EnhancedCode = "5.1.1", Reason = "No such user" };
        await using var client = await EhloAsync(host);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(550, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        Assert.Equal(554, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync(RefusedBdat());
        await AssertOnlyReplyThenQuitAsync(host, client, 554, "5.5.1");
    }

    [Fact]
    public async Task BDAT_after_BDAT_LAST_has_no_transaction_and_its_chunk_is_discarded()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await EhloAsync(host);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        var body = "Subject: real\r\n\r\nreal\r\n";

        // RFC 3030 §2: "Any BDAT command sent after the BDAT LAST is illegal and MUST be replied to with a 503".
        await client.SendAsync("BDAT " + body.Length + " LAST\r\n" + body + RefusedBdat());
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        var refusal = await client.ReadReplyAsync();
        Assert.Equal(503, refusal.Code);
        Assert.Equal(221, (await client.CommandAsync("QUIT")).Code);
        Assert.Single(host.Spool.Stored);
        Assert.DoesNotContain(host.Policy.Asked.OfType<CheckRecipient>(), r => r.Recipient.Contains("victim", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Oversized_BDAT_is_552_and_its_chunk_and_the_pipelined_ones_are_discarded(bool last)
    {
        // RFC 3030 §2: after a failed BDAT the server "MUST be prepared to accept and discard additional BDAT chunks
        // already in the pipeline"; each gets the failure, and BDAT LAST ends the transaction.
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxMessageSize"] = "1024" });
        await using var client = await EhloAsync(host);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        await client.SendAsync(RefusedBdat(last, padding: 1024) + (last ? string.Empty : "BDAT 5 LAST\r\nxxxxx"));
        var tooBig = await client.ReadReplyAsync();
        Assert.Equal(552, tooBig.Code);
        Assert.Equal("5.3.4", tooBig.Enhanced);
        if (!last)
        {
            Assert.Equal(552, (await client.ReadReplyAsync()).Code);
        }

        Assert.Equal(221, (await client.CommandAsync("QUIT")).Code);
        AssertNothingForged(host);
    }

    [Fact]
    public async Task Refused_BDAT_chunk_split_over_many_writes_is_still_discarded()
    {
        await using var host = await IngressHost.StartAsync();
        await using var client = await EhloAsync(host);
        var bytes = Encoding.Latin1.GetBytes(RefusedBdat());
        for (var i = 0; i < bytes.Length; i += 7)
        {
            await client.SendAsync(bytes[i..Math.Min(bytes.Length, i + 7)]);
        }

        await AssertOnlyReplyThenQuitAsync(host, client, 503, "5.5.1");
    }

    [Theory]
    [InlineData("BDAT")]
    [InlineData("BDAT LAST")]
    [InlineData("BDAT -5 LAST")]
    [InlineData("BDAT 5x LAST")]
    [InlineData("BDAT 0x10")]
    [InlineData("BDAT 5 LAST extra")]
    [InlineData("BDAT 5 FIRST")]
    [InlineData("BDAT 99999999999999999999")]
    [InlineData("BDAT 5\u0001")]
    public async Task BDAT_whose_size_cannot_be_parsed_ends_the_session(string line)
    {
        // The chunk length is unknown, so the octets that follow cannot be skipped: 554 and close (as Postfix does).
        await using var host = await IngressHost.StartAsync();
        await using var client = await EhloAsync(host);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        await client.SendAsync(line + "\r\n" + Forged);
        var reply = await client.ReadReplyAsync();
        Assert.Equal(554, reply.Code);
        Assert.Equal("5.5.4", reply.Enhanced);
        Assert.True(await client.IsClosedAsync());
        AssertNothingForged(host);
    }
}
