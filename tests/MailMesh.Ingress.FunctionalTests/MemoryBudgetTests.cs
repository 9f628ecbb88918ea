using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Ingress.FunctionalTests.Http;
using MailMesh.Ingress.Memory;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// Issue 7 §3: memory is bounded by Ingress:MaxBufferedBytes, not by what clients declare. The buffered bytes
/// (mailmesh.smtp.buffered_bytes) grow only as octets arrive, the N+1th large transfer gets 452 4.3.1 while the budget is
/// used up, and every path gives the bytes back.
/// </summary>
public sealed class MemoryBudgetTests
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token;

    private static MessageBufferBudget Budget(IngressHost host) => host.Services.GetRequiredService<MessageBufferBudget>();

    private static Task ReleasedAsync(IngressHost host) => Budget(host).WaitUntilAsync(inUse => inUse == 0, Timeout);

    private static async Task<RawSmtpClient> TransactionAsync(IngressHost host, string mailParameters = "")
    {
        var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>" + mailParameters)).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        return client;
    }

    /// <summary>A message of exactly <paramref name="octets"/> octets in 100-octet lines.</summary>
    private static string Body(int octets)
    {
        var text = new StringBuilder("Subject: big\r\n\r\n", octets);
        while (text.Length + 100 <= octets - 2)
        {
            text.Append('x', 98).Append("\r\n");
        }

        return text.Append('y', octets - 2 - text.Length).Append("\r\n").ToString();
    }

    [Fact]
    public async Task Twenty_sessions_declaring_35_MB_and_sending_nothing_do_not_grow_the_buffered_bytes()
    {
        await using var host = await IngressHost.StartAsync();
        long observed = -1;
        var meters = host.Services.GetRequiredService<IMeterFactory>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // Other tests' hosts run in this process too: only this host's meter.
            if (ReferenceEquals(instrument.Meter.Scope, meters) && instrument.Name == "mailmesh.smtp.buffered_bytes")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => observed = value);
        listener.Start();

        var clients = new List<RawSmtpClient>();
        try
        {
            for (var i = 0; i < 20; i++)
            {
                var client = await TransactionAsync(host, " SIZE=36700160");
                Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
                clients.Add(client);
            }

            // 20 × 35 MB declared; only the first small buffer of each (the Received header) is held.
            listener.RecordObservableInstruments();
            Assert.InRange(observed, 1, 20 * 4096);
            Assert.Equal(observed, Budget(host).InUse);
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }

        // Disconnecting mid-data gives everything back.
        await ReleasedAsync(host);
        listener.RecordObservableInstruments();
        Assert.Equal(0, observed);
        Assert.True(host.Spool.Stored.IsEmpty);
    }

    [Fact]
    public async Task The_N_plus_1th_large_transfer_gets_452_4_3_1_and_succeeds_after_the_others_finish()
    {
        // 3.75 MiB of budget; three transfers of 900 kB each hold 1 MiB buffers, leaving less than the fourth declares.
        await using var host = await IngressHost.StartAsync(new()
        {
            ["Ingress:MaxMessageSize"] = "1048576",
            ["Ingress:MaxBufferedBytes"] = "3932160",
        });
        var chunk = Body(900_000);
        var first = new List<RawSmtpClient>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var client = await TransactionAsync(host, " SIZE=1000000");
                await client.SendAsync("BDAT " + chunk.Length + "\r\n" + chunk);
                Assert.Equal(250, (await client.ReadReplyAsync()).Code);
                first.Add(client);
            }

            Assert.True(Budget(host).InUse >= 3 * 900_000);

            // The fourth: its declared SIZE does not fit now (RFC 1870 §6.2: 452 at MAIL).
            await using var fourth = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
            Assert.Equal(250, (await fourth.CommandAsync("EHLO client.test")).Code);
            var full = await fourth.CommandAsync("MAIL FROM:<a@example.com> SIZE=1000000");
            Assert.Equal(452, full.Code);
            Assert.Equal("4.3.1", full.Enhanced);

            // Without a SIZE it gets as far as its first chunk: 452 4.3.1 for the chunk (read and discarded) and for
            // every further chunk of the transaction, LAST included (RFC 3030 §2).
            Assert.Equal(250, (await fourth.CommandAsync("MAIL FROM:<a@example.com>")).Code);
            Assert.Equal(250, (await fourth.CommandAsync("RCPT TO:<b@example.org>")).Code);
            await fourth.SendAsync("BDAT " + chunk.Length + "\r\n" + chunk + "BDAT 0 LAST\r\n");
            Assert.Equal("4.3.1", (await fourth.ReadReplyAsync()).Enhanced);
            Assert.Equal("4.3.1", (await fourth.ReadReplyAsync()).Enhanced);

            // The others finish: each buffer is released before its 250 is sent.
            foreach (var client in first)
            {
                Assert.StartsWith("250 2.0.0 Ok: queued as", (await client.CommandAsync("BDAT 0 LAST")).Text, StringComparison.Ordinal);
            }

            Assert.Equal(0, Budget(host).InUse);

            // Now the fourth gets through, by DATA this time.
            Assert.Equal(250, (await fourth.CommandAsync("MAIL FROM:<a@example.com> SIZE=1000000")).Code);
            Assert.Equal(250, (await fourth.CommandAsync("RCPT TO:<b@example.org>")).Code);
            Assert.Equal(354, (await fourth.CommandAsync("DATA")).Code);
            var queued = await fourth.CommandAsync(chunk + ".");
            Assert.Equal(250, queued.Code);
            Assert.Equal(4, host.Spool.Stored.Count);
        }
        finally
        {
            foreach (var client in first)
            {
                await client.DisposeAsync();
            }
        }

        await ReleasedAsync(host);
    }

    [Fact]
    public async Task DATA_when_the_budget_is_used_up_is_452_4_3_1_before_the_354()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxMessageSize"] = "1048576" });
        var budget = Budget(host);
        await using var client = await TransactionAsync(host, " SIZE=500000");

        // Other transfers now hold all but 100 kB of the budget: less than this transaction declared.
        var held = budget.Limit - 100_000;
        Assert.True(budget.TryReserve(held));
        try
        {
            var refused = await client.CommandAsync("DATA");
            Assert.Equal(452, refused.Code);
            Assert.Equal("4.3.1", refused.Enhanced);

            // BDAT too: its chunk is read and discarded, and the session stays in step.
            await client.SendAsync("BDAT 5 LAST\r\nRSET\r");
            Assert.Equal("4.3.1", (await client.ReadReplyAsync()).Enhanced);
            Assert.Equal(250, (await client.CommandAsync("NOOP")).Code);
        }
        finally
        {
            budget.Release(held);
        }

        await ReleasedAsync(host);
        Assert.True(host.Spool.Stored.IsEmpty);
    }

    [Fact]
    public async Task Running_out_mid_message_is_452_4_3_1_at_the_end_of_data_never_a_silent_drop()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxMessageSize"] = "1048576" });
        var budget = Budget(host);
        await using var client = await TransactionAsync(host);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);

        // Other transfers now hold all but 300 kB: the message cannot grow to its 600 kB.
        var held = budget.Limit - budget.InUse - 300_000;
        Assert.True(budget.TryReserve(held));
        try
        {
            var refused = await client.CommandAsync(Body(600_000) + ".");
            Assert.Equal(452, refused.Code);
            Assert.Equal("4.3.1", refused.Enhanced);
            Assert.Equal(250, (await client.CommandAsync("NOOP")).Code);
        }
        finally
        {
            budget.Release(held);
        }

        await ReleasedAsync(host);
        Assert.True(host.Spool.Stored.IsEmpty);
    }

    [Fact]
    public async Task Bytes_are_released_on_every_path()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:MaxMessageSize"] = "1048576" });
        host.Policy.Message = m => m.Sender == "refused@example.com"
            ? new PolicyDecision { Accepted = false, ReplyCode = 550, EnhancedCode = "5.7.1", Reason = "Spam" }
            : PolicyDecision.Accept;
        var body = Body(300_000);

        // RSET between chunks.
        await using (var client = await TransactionAsync(host))
        {
            await client.SendAsync("BDAT " + body.Length + "\r\n" + body);
            Assert.Equal(250, (await client.ReadReplyAsync()).Code);
            Assert.True(Budget(host).InUse > 300_000);
            Assert.Equal(250, (await client.CommandAsync("RSET")).Code);
            Assert.Equal(0, Budget(host).InUse);

            // QUIT between chunks.
            Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
            Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
            await client.SendAsync("BDAT " + body.Length + "\r\n" + body);
            Assert.Equal(250, (await client.ReadReplyAsync()).Code);
            Assert.Equal(221, (await client.CommandAsync("QUIT")).Code);
            Assert.True(await client.IsClosedAsync());
        }

        await ReleasedAsync(host);

        // Disconnect in the middle of DATA.
        await using (var client = await TransactionAsync(host))
        {
            Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
            await client.SendAsync(body);
        }

        await ReleasedAsync(host);

        // A message Policy refuses at the end of data, one too big, and one with a bare LF.
        await using (var client = await TransactionAsync(host, string.Empty))
        {
            Assert.Equal(250, (await client.CommandAsync("RSET")).Code);
            Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<refused@example.com>")).Code);
            Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
            Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
            Assert.Equal(550, (await client.CommandAsync(body + ".")).Code);
            Assert.Equal(0, Budget(host).InUse);

            Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
            Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
            Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
            Assert.Equal(552, (await client.CommandAsync(Body(1_100_000) + ".")).Code);
            Assert.Equal(0, Budget(host).InUse);

            Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
            Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
            Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
            Assert.Equal(554, (await client.CommandAsync(body + "bare\nLF\r\n.")).Code);
            Assert.Equal(0, Budget(host).InUse);

            // And an accepted one.
            Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
            Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
            Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
            Assert.Equal(250, (await client.CommandAsync(body + ".")).Code);
            Assert.Equal(0, Budget(host).InUse);
        }

        Assert.Single(host.Spool.Stored);
    }

    [Fact]
    public async Task HTTP_submission_gets_503_with_a_reason_while_the_budget_is_used_up()
    {
        await using var host = await HttpApiHost.StartAsync();
        var budget = host.Services.GetRequiredService<MessageBufferBudget>();
        using var client = host.CreateClient();
        var message = new { from = "sender@example.com", to = new[] { "rcpt@example.org" }, subject = "Hi", text = "Hello" };

        // Other transfers hold all but a few bytes of the budget.
        Assert.True(budget.TryReserve(budget.Limit - 1000));
        try
        {
            using var refused = await client.PostAsJsonAsync("/api/v1/messages", message, Timeout);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.NotNull(refused.Headers.RetryAfter);
            Assert.Contains("Ingress:MaxBufferedBytes", await refused.Content.ReadAsStringAsync(Timeout), StringComparison.Ordinal);
        }
        finally
        {
            budget.Release(budget.Limit - 1000);
        }

        using var accepted = await client.PostAsJsonAsync("/api/v1/messages", message, Timeout);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        Assert.Equal(0, budget.InUse);
        Assert.Single(host.Spool.Stored);
    }
}
