using System.Text;
using MailMesh.Contracts;
using MailMesh.Delivery.Shaping;
using MailMesh.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Delivery.Tests;

/// <summary>Traffic shaping in the consumer: a suspended site is not contacted, and its work goes back not attempted.</summary>
public sealed class ShapingDeliveryTests
{
    private static readonly byte[] Content = Encoding.ASCII.GetBytes("From: sender@origin.test\r\nTo: rcpt@dest.test\r\nSubject: shaping\r\n\r\nHello.\r\n");

    [Fact]
    public async Task A_suspended_site_is_not_contacted_and_its_recipients_go_back_not_attempted_until_the_suspension_ends()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        var store = f.Services.GetRequiredService<ISiteActionStore>();
        var now = DateTimeOffset.UtcNow;
        await store.AddAsync(new SiteAction
        {
            Id = Guid.NewGuid(),
            Site = "mx1.dest.test",
            Kind = SiteActionKind.Suspend,
            CreatedAt = now,
            Until = now + TimeSpan.FromMinutes(5),
            Reason = "test",
            CreatedBy = "admin:test",
        }, CancellationToken.None);
        Assert.True(await f.Services.GetRequiredService<SiteActionCache>().RefreshAsync(CancellationToken.None));

        var stored = f.Store(Content);
        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test", "b@dest.test"));

        Assert.All(attempt.Results, r =>
        {
            Assert.Equal(DeliveryOutcome.Deferred, r.Outcome);
            Assert.Equal("4.4.5", r.EnhancedCode);
            Assert.Contains("site mx1.dest.test is suspended", r.ReplyText, StringComparison.Ordinal);
            Assert.NotNull(r.NotAttemptedUntil);
            Assert.InRange(r.NotAttemptedUntil!.Value, now + TimeSpan.FromMinutes(4), now + TimeSpan.FromMinutes(6));
        });
        Assert.Null(attempt.RemoteHost);
        Assert.Equal(0, f.Sink.ConnectionCount);
    }

    [Fact]
    public async Task A_suspension_of_one_source_address_holds_the_pool_that_sends_from_it_and_not_the_other()
    {
        // Budgets and suspensions are per site and source address: the IP pool's choice, not "default".
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Delivery:Pools:a:Addresses:0:Address"] = "127.0.0.41",
            ["Delivery:Pools:b:Addresses:0:Address"] = "127.0.0.42",
            ["Delivery:DefaultPool"] = "a",
        });
        f.Route("dest.test", f.Sink);
        var now = DateTimeOffset.UtcNow;
        await f.Services.GetRequiredService<ISiteActionStore>().AddAsync(new SiteAction
        {
            Id = Guid.NewGuid(),
            Site = "mx1.dest.test",
            SourceIp = "127.0.0.41",
            Kind = SiteActionKind.Suspend,
            CreatedAt = now,
            Until = now + TimeSpan.FromMinutes(5),
            Reason = "test",
            CreatedBy = "admin:test",
        }, CancellationToken.None);
        Assert.True(await f.Services.GetRequiredService<SiteActionCache>().RefreshAsync(CancellationToken.None));

        var held = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "a@dest.test"));
        var fromB = f.Store(f.Store(Content) with { Id = Guid.NewGuid(), Pool = "b" });
        var sent = await f.DeliverAsync(DeliveryFixture.Request(fromB.Id, "dest.test", "b@dest.test"));

        Assert.NotNull(Assert.Single(held.Results).NotAttemptedUntil);
        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(sent.Results).Outcome);
        Assert.Equal("127.0.0.42", Assert.Single(await f.Sink.WaitForMessagesAsync(1)).ClientAddress!.ToString());
    }

    [Fact]
    public async Task A_site_connection_limit_and_deliveries_per_connection_apply_to_the_pool()
    {
        var path = Path.GetTempFileName();
        await File.WriteAllTextAsync(path, """{ "domains": { "dest.test": { "maxConnections": 1, "maxDeliveriesPerConnection": 2 } } }""");
        try
        {
            await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?> { ["Delivery:Shaping:Files:0"] = path });
            f.Route("dest.test", f.Sink);
            f.Sink.DataReplyDelay = TimeSpan.FromMilliseconds(20);
            var attempts = await Task.WhenAll(Enumerable.Range(0, 6).Select(i =>
                f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", $"r{i}@dest.test"))));

            Assert.All(attempts, a => Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(a.Results).Outcome));
            Assert.Equal(1, f.Sink.MaxConcurrentSessions);
            Assert.Equal(3, f.Sink.ConnectionCount); // 6 messages, 2 per connection
        }
        finally
        {
            File.Delete(path);
        }
    }
}
