using System.Net;
using System.Text;
using MailMesh.Contracts;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// Issue 11 over real sockets: a pool address is bound before connect (the sink sees it as the remote end point) and
/// says its own EHLO name; connections are not shared across source addresses; the pool header never leaves; a pool
/// whose addresses all reached their warm-up cap defers without an attempt (docs/delivery.md "IP pools").
/// </summary>
public sealed class PoolDeliveryTests
{
    private static byte[] Message(string extraHeader = "") =>
        Encoding.ASCII.GetBytes($"From: sender@origin.test\r\nTo: rcpt@dest.test\r\n{extraHeader}Subject: pools\r\n\r\nHello.\r\n");

    private static Dictionary<string, string?> Pools(string? warmUpStart = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Delivery:Pools:transactional:Addresses:0:Address"] = "127.0.0.31",
            ["Delivery:Pools:transactional:Addresses:0:EhloName"] = "tx1.mailmesh.test",
            ["Delivery:Pools:bulk:Addresses:0:Address"] = "127.0.0.32",
            ["Delivery:Pools:bulk:Addresses:0:EhloName"] = "bulk1.mailmesh.test",
            ["Delivery:PoolBySenderDomain:news.origin.test"] = "bulk",
            ["Delivery:DefaultPool"] = "transactional",
        };
        if (warmUpStart is not null)
        {
            // A cap of one message a day (two days: the test may straddle midnight UTC).
            settings["Delivery:Pools:bulk:Addresses:0:WarmUp:Start"] = warmUpStart;
            settings["Delivery:Pools:bulk:Addresses:0:WarmUp:Schedule:0"] = "1";
            settings["Delivery:Pools:bulk:Addresses:0:WarmUp:Schedule:1"] = "1";
        }

        return settings;
    }

    [Fact]
    public async Task The_sink_sees_the_pool_address_and_its_EHLO_name_and_no_pool_header()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Pools());
        f.Route("dest.test", f.Sink);

        // The default pool, then the sender domain's pool, then the stored pool (as an authenticated header set it).
        var plain = f.Store(Message());
        await f.DeliverAsync(DeliveryFixture.Request(plain.Id, "dest.test", "a@dest.test"));
        var news = f.Store(Message(), sender: "list@news.origin.test");
        await f.DeliverAsync(DeliveryFixture.Request(news.Id, "dest.test", "b@dest.test"));
        var named = f.Store(f.Store(Message("X-MailMesh-Pool: bulk\r\n")) with { Id = Guid.NewGuid(), Pool = "bulk" });
        var attempt = await f.DeliverAsync(DeliveryFixture.Request(named.Id, "dest.test", "c@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, attempt.Results[0].Outcome);
        var messages = await f.Sink.WaitForMessagesAsync(3);
        Assert.Equal(
            [("127.0.0.31", "tx1.mailmesh.test"), ("127.0.0.32", "bulk1.mailmesh.test"), ("127.0.0.32", "bulk1.mailmesh.test")],
            messages.Select(m => (m.ClientAddress!.ToString(), m.Helo)));
        Assert.All(messages, m => Assert.DoesNotContain("X-MailMesh-Pool", m.DataText, StringComparison.OrdinalIgnoreCase));

        // One connection per source address: the bulk messages shared one, the transactional one had its own.
        Assert.Equal(2, messages.Select(m => m.ConnectionId).Distinct().Count());
        Assert.Equal(messages[1].ConnectionId, messages[2].ConnectionId);
    }

    [Fact]
    public async Task A_pool_at_its_warm_up_cap_defers_without_an_attempt()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Pools(warmUpStart: DateOnly.FromDateTime(DateTime.UtcNow).ToString("yyyy-MM-dd")));
        f.Route("dest.test", f.Sink);
        var first = f.Store(f.Store(Message()) with { Id = Guid.NewGuid(), Pool = "bulk" });
        var second = f.Store(first with { Id = Guid.NewGuid() });

        var sent = await f.DeliverAsync(DeliveryFixture.Request(first.Id, "dest.test", "a@dest.test"));
        var capped = await f.DeliverAsync(DeliveryFixture.Request(second.Id, "dest.test", "b@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, sent.Results[0].Outcome);
        var result = Assert.Single(capped.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.7.0", true), (result.Outcome, result.ReplyCode, result.EnhancedCode, result.NotAttempted));
        Assert.Contains("pool warm-up cap reached", result.ReplyText, StringComparison.Ordinal);
        Assert.Single(f.Sink.Messages);
        Assert.Equal(1, await f.Counters.CountAsync("127.0.0.32", DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None));
    }
}
