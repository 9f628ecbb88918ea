using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using MailKit.Net.Smtp;
using MailMesh.Ingress;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;

namespace MailMesh.Scale.IntegrationTests;

/// <summary>
/// Two replicas of Ingress, Policy, Queue and Dns and three of Delivery share one RabbitMQ virtual host and one
/// PostgreSQL database: every message is delivered exactly once, and the work is spread over the replicas.
/// </summary>
public sealed class HorizontalScaleTests
{
    private const int Messages = 60;
    private const int DeliveryReplicas = 3;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Every_message_is_delivered_exactly_once_and_every_replica_does_work()
    {
        await using var cluster = await Cluster.CreateAsync();

        // Small claim batches, so a replica that wakes up finds work the other has not taken yet; a little latency at
        // the destination, so deliveries overlap and every Delivery replica's consumer is handed some.
        cluster.Settings["Queue:ClaimBatchSize"] = "4";
        cluster.Destination.DataReplyDelay = TimeSpan.FromMilliseconds(20);

        // Claims per Queue replica, told apart by the replica's own IMeterFactory (the Meter's Scope).
        var queues = new List<object>();
        var claims = new ConcurrentDictionary<object, long>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "mailmesh.queue.claimed" && instrument.Meter.Scope is not null)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => claims.AddOrUpdate(instrument.Meter.Scope!, value, (_, sum) => sum + value));
        listener.Start();

        for (var i = 0; i < 2; i++)
        {
            var queue = await cluster.StartAsync(MeshService.Queue);
            queues.Add(queue.Services.GetRequiredService<IMeterFactory>());
        }

        await cluster.StartAsync(MeshService.Policy);
        await cluster.StartAsync(MeshService.Policy);
        await cluster.StartAsync(MeshService.Dns);
        await cluster.StartAsync(MeshService.Dns);
        for (var i = 1; i <= DeliveryReplicas; i++)
        {
            // Each Delivery replica says its own name in EHLO, so the sink can tell who delivered what.
            await cluster.StartAsync(MeshService.Delivery, new Dictionary<string, string> { ["Delivery:HeloName"] = HeloName(i) });
        }

        var ingress = new List<IPEndPoint>();
        for (var i = 0; i < 2; i++)
        {
            var host = await cluster.StartAsync(MeshService.Ingress);
            ingress.Add(host.Services.GetRequiredService<IngressEndpoints>().Smtp[0]);
        }

        // Half the messages through each Ingress, three concurrent client connections per Ingress.
        var ids = new ConcurrentBag<Guid>();
        await Task.WhenAll(Enumerable.Range(0, 6).Select(async connection =>
        {
            var endpoint = ingress[connection % 2];
            using var client = new SmtpClient();
            await client.ConnectAsync(endpoint.Address.ToString(), endpoint.Port, MailKit.Security.SecureSocketOptions.None);
            for (var n = connection; n < Messages; n += 6)
            {
                var reply = await client.SendAsync(NewMessage(n));
                ids.Add(Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]));
            }

            await client.DisconnectAsync(quit: true);
        }));
        Assert.Equal(Messages, ids.Distinct().Count());

        // The spool is the truth: every recipient Delivered; only then is the sink's tally final.
        await Task.WhenAll(ids.Select(id => WaitForDeliveredAsync(cluster.Spool, id)));
        var delivered = cluster.Destination.Messages;

        // Exactly once: one arrival per Subject and per Message-ID, none missing, no duplicates.
        var parsed = delivered.Select(m => (Sink: m, Mime: MimeMessage.Load(new MemoryStream(m.Data)))).ToList();
        var bySubject = parsed.GroupBy(p => p.Mime.Subject ?? string.Empty).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(Messages, parsed.Count);
        Assert.Equal(Messages, parsed.Select(p => p.Mime.MessageId).Distinct().Count());
        for (var n = 0; n < Messages; n++)
        {
            Assert.True(bySubject.TryGetValue(Subject(n), out var count) && count == 1, $"'{Subject(n)}' arrived {(bySubject.TryGetValue(Subject(n), out var c) ? c : 0)} times");
        }

        // Every Delivery replica delivered something: the sink saw each replica's EHLO name on the connection that
        // carried at least one message.
        var ehloByConnection = cluster.Destination.Commands
            .Select(line => line.Split(' ', 3))
            .Where(parts => parts.Length == 3 && parts[1].Equals("EHLO", StringComparison.OrdinalIgnoreCase))
            .ToDictionary(parts => int.Parse(parts[0].TrimStart('#'), CultureInfo.InvariantCulture), parts => parts[2]);
        var perReplica = parsed.GroupBy(p => ehloByConnection.GetValueOrDefault(p.Sink.ConnectionId, "?")).ToDictionary(g => g.Key, g => g.Count());
        for (var i = 1; i <= DeliveryReplicas; i++)
        {
            Assert.True(perReplica.GetValueOrDefault(HeloName(i)) > 0, $"{HeloName(i)} delivered nothing: {Describe(perReplica)}");
        }

        // Both Queue replicas claimed work, and no recipient was claimed twice: the claims add up to the recipients.
        listener.RecordObservableInstruments();
        var perQueue = queues.Select(scope => claims.GetValueOrDefault(scope)).ToList();
        Assert.All(perQueue, claimed => Assert.True(claimed > 0, $"a Queue replica claimed nothing: {string.Join(", ", perQueue)}"));
        Assert.Equal(Messages, perQueue.Sum());
    }

    private static string HeloName(int replica) => $"delivery-{replica}.mailmesh.test";

    internal static string Subject(int n) => "scale " + n.ToString(CultureInfo.InvariantCulture);

    private static string Describe(Dictionary<string, int> counts) => string.Join(", ", counts.Select(pair => $"{pair.Key}={pair.Value}"));

    internal static MimeMessage NewMessage(int n)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@" + Cluster.SenderDomain));
        message.To.Add(MailboxAddress.Parse($"user{n}@{Cluster.DestinationDomain}"));
        message.Subject = Subject(n);
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(Cluster.SenderDomain);
        message.Body = new TextPart("plain") { Text = "scale out\r\n" };
        return message;
    }

    /// <summary>Polls the spool until every recipient of the message is Delivered; fails after the patience runs out.</summary>
    internal static async Task WaitForDeliveredAsync(ISpool spool, Guid id)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        MessageStatus? status;
        do
        {
            status = await spool.GetStatusAsync(id, CancellationToken.None);
            if (status is not null && status.Recipients.All(r => r.State == RecipientState.Delivered))
            {
                return;
            }
        }
        while (DateTimeOffset.UtcNow < deadline && await poll.WaitForNextTickAsync());

        var recipients = status is null ? "unknown message" : string.Join(", ", status.Recipients.Select(r => $"{r.Address}={r.State} ({r.LastReplyCode} {r.LastReplyText})"));
        throw new TimeoutException($"message {id} was not delivered in time; last: {recipients}");
    }
}
