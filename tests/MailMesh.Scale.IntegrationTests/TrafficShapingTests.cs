using System.Globalization;
using MailKit.Net.Smtp;
using MailMesh.Delivery.Shaping;
using MailMesh.Ingress;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;
using Xunit.Abstractions;

namespace MailMesh.Scale.IntegrationTests;

/// <summary>
/// Traffic shaping across three Delivery replicas on real PostgreSQL and RabbitMQ (issue 11): the site's connection limit
/// and message rate hold at the destination for all replicas together, and a throttling reply suspends the site for
/// every replica, its held work keeping its attempts, until the suspension ends.
/// </summary>
public sealed class TrafficShapingTests(ITestOutputHelper output) : IDisposable
{
    private const int DeliveryReplicas = 3;
    private readonly string _rules = Path.GetTempFileName();

    public void Dispose() => File.Delete(_rules);

    [Fact]
    public async Task The_connection_limit_and_message_rate_of_a_site_hold_across_three_delivery_replicas()
    {
        const int messages = 80;
        const int rate = 20;
        await File.WriteAllTextAsync(_rules, $$"""{ "domains": { "{{Cluster.DestinationDomain}}": { "maxConnections": 2, "messageRate": "{{rate}}/s", "maxDeliveriesPerConnection": 10 } } }""");
        // A generous store timeout: on a busy test machine a statement slower than the default (2 s) would put a replica on
        // its fallback budget, which is not what this test measures.
        await using var cluster = await StartAsync(new Dictionary<string, string>
        {
            ["Queue:ClaimBatchSize"] = "8",
            ["Delivery:Shaping:StoreTimeout"] = "00:00:15",
        });
        cluster.Destination.DataReplyDelay = TimeSpan.FromMilliseconds(30);

        var ids = await SendAsync(cluster, 0, messages);
        await Task.WhenAll(ids.Select(id => HorizontalScaleTests.WaitForDeliveredAsync(cluster.Spool, id)));

        // At the destination: never more than two sessions at once, from three replicas that would open up to ten each.
        var sink = cluster.Destination;
        Assert.True(sink.MaxConcurrentSessions <= 2, $"{sink.MaxConcurrentSessions} sessions at once");

        // The rate: after the burst (one second's worth), no faster than the rate; half a second of slack for the time
        // between a token and the message's arrival. (Only a limiter letting too much through can fail this.)
        var arrivals = sink.Messages.Select(m => m.ReceivedAt).Order().ToList();
        Assert.Equal(messages, arrivals.Count);
        var span = arrivals[^1] - arrivals[0];
        Assert.True(messages <= rate + (rate * (span.TotalSeconds + 0.5)), $"{messages} messages in {span.TotalSeconds:F2} s");
        var busiestSecond = arrivals.Select((t, i) => arrivals.Skip(i).TakeWhile(u => u - t < TimeSpan.FromSeconds(1)).Count()).Max();

        // Nothing held back beyond its wait: every recipient took one attempt.
        foreach (var id in ids)
        {
            var status = await cluster.Spool.GetStatusAsync(id, CancellationToken.None);
            Assert.All(status!.Recipients, r => Assert.Equal(1, r.Attempts));
        }

        var budgets = DeliveryHosts(cluster).Select(h => h.Services.GetRequiredService<Shaper>().Budget).ToList();
        var statements = budgets.Sum(b => b.Statements);
        var statementTime = budgets.Aggregate(TimeSpan.Zero, (sum, b) => sum + b.StatementTime);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{messages} messages in {span.TotalSeconds:F2} s ({(messages - 1) / span.TotalSeconds:F1}/s, busiest second {busiestSecond}), " +
            $"{sink.MaxConcurrentSessions} sessions at most, {sink.ConnectionCount} connections; " +
            $"{statements} budget statements ({(double)statements / messages:F2} per message), mean {statementTime.TotalMilliseconds / Math.Max(1, statements):F2} ms"));
    }

    [Fact]
    public async Task A_throttling_reply_suspends_the_site_for_every_replica_and_held_work_keeps_its_attempts()
    {
        await File.WriteAllTextAsync(_rules, $$"""
            {
              "domains": { "{{Cluster.DestinationDomain}}": {} },
              "automation": [ { "name": "test-throttle", "sites": [ "{{Cluster.DestinationDomain}}" ], "patterns": [ "4\\.7\\.28" ],
                                "action": "suspend", "duration": "00:00:04" } ]
            }
            """);
        await using var cluster = await StartAsync(new Dictionary<string, string>
        {
            ["Delivery:Shaping:RefreshInterval"] = "00:00:00.200",
            ["Delivery:Shaping:MaxHold"] = "00:00:01",
            ["Queue:Retry:Classes:Throttled:FirstRetryDelay"] = "00:00:01",
            ["Queue:Retry:Classes:Throttled:MaxRetryDelay"] = "00:00:02",
        });
        var sink = cluster.Destination;
        sink.ScriptedDataReplies.Enqueue("421 4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address.");

        // The first message is throttled: the rule suspends the site, and every replica learns it from the store.
        var first = Assert.Single(await SendAsync(cluster, 0, 1));
        var suspensions = new List<SiteAction>();
        foreach (var host in DeliveryHosts(cluster))
        {
            var cache = host.Services.GetRequiredService<SiteActionCache>();
            suspensions.Add(await WaitForAsync(() => cache.Suspension(Cluster.DestinationDomain, Shaper.DefaultSourceIp, DateTimeOffset.UtcNow)));
        }

        var suspension = Assert.Single(suspensions.DistinctBy(s => s.Id));
        Assert.Equal("rule:test-throttle", suspension.CreatedBy);

        // Mail sent now waits in the queue, however often it is claimed, until the suspension ends.
        var held = await SendAsync(cluster, 1, 10);
        await Task.WhenAll(held.Append(first).Select(id => HorizontalScaleTests.WaitForDeliveredAsync(cluster.Spool, id)));
        var heldSubjects = Enumerable.Range(1, 10).Select(HorizontalScaleTests.Subject).ToHashSet();
        var arrivals = sink.Messages.Where(m => m.Reply!.StartsWith("250", StringComparison.Ordinal)).ToList();
        foreach (var message in arrivals.Where(m => heldSubjects.Contains(MimeMessage.Load(new MemoryStream(m.Data)).Subject ?? string.Empty)))
        {
            Assert.True(message.ReceivedAt >= suspension.Until, $"a held message arrived at {message.ReceivedAt:O}, before the suspension ended at {suspension.Until:O}");
        }

        // One transaction per message plus the throttled one: nothing was tried while suspended. Attempts: the throttled
        // recipient two (421, then 250), every held one one, whatever the number of times it was held back.
        Assert.Equal(12, sink.Messages.Count);
        var throttled = (await cluster.Spool.GetStatusAsync(first, CancellationToken.None))!.Recipients.Single();
        Assert.Equal((2, 2), (throttled.Attempts, throttled.History.Count));
        foreach (var id in held)
        {
            var recipient = (await cluster.Spool.GetStatusAsync(id, CancellationToken.None))!.Recipients.Single();
            Assert.Equal((1, 1), (recipient.Attempts, recipient.History.Count));
        }

        output.WriteLine($"suspended {suspension.CreatedAt:O} until {suspension.Until:O}; held mail arrived from {arrivals.Skip(1).Min(m => m.ReceivedAt):O}");
    }

    /// <summary>The cluster with the shaping file, one Queue, Policy and Dns, three Delivery replicas and one Ingress.</summary>
    private async Task<DistributedMesh> StartAsync(Dictionary<string, string> settings)
    {
        var cluster = await Cluster.CreateAsync();
        cluster.Settings["Delivery:Shaping:Files:0"] = _rules;
        foreach (var (key, value) in settings)
        {
            cluster.Settings[key] = value;
        }

        await cluster.StartAsync(MeshService.Queue);
        await cluster.StartAsync(MeshService.Policy);
        await cluster.StartAsync(MeshService.Dns);
        for (var i = 1; i <= DeliveryReplicas; i++)
        {
            await cluster.StartAsync(MeshService.Delivery, new Dictionary<string, string> { ["Delivery:HeloName"] = $"delivery-{i}.mailmesh.test" });
        }

        await cluster.StartAsync(MeshService.Ingress);
        return cluster;
    }

    private static IEnumerable<WebApplication> DeliveryHosts(DistributedMesh cluster) =>
        cluster.Replicas.Where(r => r.Service == MeshService.Delivery).Select(r => r.Host);

    /// <summary>Sends messages <paramref name="from"/> .. from + count - 1 through the Ingress, four connections at once.</summary>
    private static async Task<List<Guid>> SendAsync(DistributedMesh cluster, int from, int count)
    {
        var endpoint = cluster.Host(MeshService.Ingress).Services.GetRequiredService<IngressEndpoints>().Smtp[0];
        var ids = new List<Guid>();
        await Task.WhenAll(Enumerable.Range(0, Math.Min(4, count)).Select(async connection =>
        {
            using var client = new SmtpClient();
            await client.ConnectAsync(endpoint.Address.ToString(), endpoint.Port, MailKit.Security.SecureSocketOptions.None);
            for (var n = from + connection; n < from + count; n += 4)
            {
                var reply = await client.SendAsync(HorizontalScaleTests.NewMessage(n));
                lock (ids)
                {
                    ids.Add(Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]));
                }
            }

            await client.DisconnectAsync(quit: true);
        }));
        return ids;
    }

    private static async Task<T> WaitForAsync<T>(Func<T?> probe)
        where T : class
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(60);
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        while (true)
        {
            if (probe() is { } found)
            {
                return found;
            }

            Assert.True(DateTimeOffset.UtcNow < deadline, "the condition was not met in time");
            await poll.WaitForNextTickAsync();
        }
    }
}
