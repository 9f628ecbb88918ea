using System.Collections.Concurrent;
using MailKit.Net.Smtp;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// Issue 8: on the hot path a mail crosses the broker at most three times (the MessagesReceived batch that announces
/// it, DeliverMessage or the DeliverMessages batch of its claim, the MessageEvents batch that carries its result's event): policy decisions are made in the Ingress process, MX answers
/// are kept in Delivery, and results travel through the spool's outbox. Counted at every service's bus, over real
/// RabbitMQ.
/// </summary>
public sealed class BusMessageCountTests
{
    private const int Mails = 10;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_mail_to_a_known_destination_crosses_the_broker_at_most_three_times()
    {
        await using var mesh = await Mesh.CreateAsync();
        await mesh.StartAsync();
        var counter = new BusMessageCounter();
        foreach (var service in new[] { MeshService.Ingress, MeshService.Policy, MeshService.Queue, MeshService.Dns, MeshService.Delivery })
        {
            counter.Observe(mesh.Host(service).Services.GetRequiredService<IBus>());
        }

        // The first mail to the domain pays for its MX lookup; after that Delivery answers from its cache.
        await SendAndWaitAsync(mesh, "warm-up");
        await counter.WaitForEventsAsync(1, Patience);
        counter.Reset();

        var ids = await SendMailsAsync(mesh, "counted");
        foreach (var id in ids)
        {
            await mesh.WaitForStatusAsync(id, s => s.Recipients.All(r => r.State == RecipientState.Delivered), Patience);
        }

        await counter.WaitForEventsAsync(Mails, Patience);
        var counts = counter.Snapshot();
        var total = counts.Values.Sum();
        Assert.True(total <= 3 * Mails, $"{total} bus messages for {Mails} mails: {Describe(counts)}");
        Assert.DoesNotContain("MessageReceived", counts.Keys); // Ingress announces in batches
        Assert.InRange(counts.GetValueOrDefault("MessagesReceived"), 1, Mails);
        // Every mail's work item went to Delivery once, alone or in a DeliverMessages batch of its claim.
        Assert.Equal(Mails, counter.WorkItems);
        Assert.InRange(counts.GetValueOrDefault("DeliverMessage") + counts.GetValueOrDefault("DeliverMessages"), 1, Mails);
        Assert.DoesNotContain("ResolveMx", counts.Keys);
        Assert.DoesNotContain(counts.Keys, type => type.StartsWith("Check", StringComparison.Ordinal));
        Assert.DoesNotContain("MessageEvent", counts.Keys); // events travel in batches, never one bus message each
        Assert.InRange(counts.GetValueOrDefault("MessageEvents"), 1, Mails);
    }

    [Fact]
    public async Task The_jobs_of_one_claim_cross_the_broker_together_and_each_is_delivered_once()
    {
        // Mail accepted while no Queue runs is all due when one starts: its first claim takes the ten jobs and sends them
        // as two DeliverMessages of five (Queue:DispatchBatchSize 8), over real RabbitMQ, to a real Delivery.
        await using var mesh = await Mesh.CreateAsync();
        await mesh.StartAsync();
        var consumed = new WorkConsumed();
        mesh.Host(MeshService.Delivery).Services.GetRequiredService<IBus>().ConnectConsumeObserver(consumed);
        await mesh.Host(MeshService.Queue).StopAsync();

        var ids = await SendMailsAsync(mesh, "batched");
        await mesh.StartAsync(MeshService.Queue);
        foreach (var id in ids)
        {
            var status = await mesh.WaitForStatusAsync(id, s => s.Recipients.All(r => r.State == RecipientState.Delivered), Patience);
            Assert.Equal(1, Assert.Single(status.Recipients).Attempts);
        }

        Assert.Equal([5, 5], consumed.Batches.Order());
        Assert.Equal(ids.Order(), consumed.MessageIds.Order());
        var arrived = mesh.Destination.Messages.Count(m => System.Text.Encoding.ASCII.GetString(m.Data).Contains("Subject: batched ", StringComparison.Ordinal));
        Assert.Equal(Mails, arrived);
    }

    /// <summary>Sends <see cref="Mails"/> mails in one SMTP session, subjects "<paramref name="subject"/> 0", "... 1", ...; returns their ids.</summary>
    private static async Task<List<Guid>> SendMailsAsync(DistributedMesh mesh, string subject)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        var ids = new List<Guid>();
        for (var i = 0; i < Mails; i++)
        {
            var reply = await client.SendAsync(NewMessage($"{subject} {i}"));
            ids.Add(Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]));
        }

        await client.DisconnectAsync(quit: true);
        return ids;
    }

    private static async Task SendAndWaitAsync(DistributedMesh mesh, string subject)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        var reply = await client.SendAsync(NewMessage(subject));
        await client.DisconnectAsync(quit: true);
        await mesh.WaitForStatusAsync(Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]), s => s.Recipients.All(r => r.State == RecipientState.Delivered), Patience);
    }

    private static MimeMessage NewMessage(string subject)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@" + Mesh.SenderDomain));
        message.To.Add(MailboxAddress.Parse($"{Guid.NewGuid():N}@{Mesh.DestinationDomain}"));
        message.Subject = subject;
        message.Body = new TextPart("plain") { Text = "counted\r\n" };
        return message;
    }

    private static string Describe(IReadOnlyDictionary<string, int> counts) =>
        string.Join(", ", counts.OrderByDescending(c => c.Value).Select(c => $"{c.Key} {c.Value}"));

    /// <summary>The work items a Delivery consumed: the size of each DeliverMessages batch, and every job's message.</summary>
    private sealed class WorkConsumed : IConsumeObserver
    {
        private readonly ConcurrentQueue<int> _batches = new();
        private readonly ConcurrentQueue<Guid> _messageIds = new();

        public IReadOnlyList<int> Batches => [.. _batches];

        public IReadOnlyList<Guid> MessageIds => [.. _messageIds];

        public Task PreConsume<T>(ConsumeContext<T> context)
            where T : class
        {
            switch (context.Message)
            {
                case Contracts.DeliverMessages batch:
                    _batches.Enqueue(batch.Jobs.Count);
                    foreach (var job in batch.Jobs)
                    {
                        _messageIds.Enqueue(job.MessageId);
                    }

                    break;
                case Contracts.DeliverMessage job:
                    _messageIds.Enqueue(job.MessageId);
                    break;
            }

            return Task.CompletedTask;
        }

        public Task PostConsume<T>(ConsumeContext<T> context)
            where T : class => Task.CompletedTask;

        public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception)
            where T : class => Task.CompletedTask;
    }

    /// <summary>Every message a bus sends or publishes, by message type (a publish is counted once, not also as its send).</summary>
    private sealed class BusMessageCounter : IPublishObserver, ISendObserver
    {
        private readonly ConcurrentDictionary<string, int> _counts = new(StringComparer.Ordinal);
        private int _events;
        private int _workItems;

        /// <summary>Work items published for Delivery: each DeliverMessage, and each job of a DeliverMessages batch.</summary>
        public int WorkItems => Volatile.Read(ref _workItems);

        public void Observe(IBus bus)
        {
            bus.ConnectPublishObserver(this);
            bus.ConnectSendObserver(this);
        }

        public void Reset()
        {
            _counts.Clear();
            Interlocked.Exchange(ref _events, 0);
            Interlocked.Exchange(ref _workItems, 0);
        }

        public IReadOnlyDictionary<string, int> Snapshot() => new Dictionary<string, int>(_counts, StringComparer.Ordinal);

        /// <summary>Waits until the published <c>MessageEvents</c> batches carried <paramref name="count"/> events in all.</summary>
        public async Task WaitForEventsAsync(int count, TimeSpan timeout)
        {
            using var cancel = new CancellationTokenSource(timeout);
            using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
            while (Volatile.Read(ref _events) < count)
            {
                await poll.WaitForNextTickAsync(cancel.Token);
            }
        }

        public Task PostPublish<T>(PublishContext<T> context)
            where T : class
        {
            _counts.AddOrUpdate(typeof(T).Name, 1, (_, n) => n + 1);
            if (context.Message is Contracts.MessageEvents batch)
            {
                Interlocked.Add(ref _events, batch.Events.Count);
            }

            Interlocked.Add(ref _workItems, context.Message switch
            {
                Contracts.DeliverMessage => 1,
                Contracts.DeliverMessages work => work.Jobs.Count,
                _ => 0,
            });

            return Task.CompletedTask;
        }

        public Task PostSend<T>(SendContext<T> context)
            where T : class
        {
            // Publishes also pass through the send pipeline to their exchange: count only what was sent, not published.
            if (context is not PublishContext)
            {
                _counts.AddOrUpdate(typeof(T).Name, 1, (_, n) => n + 1);
            }

            return Task.CompletedTask;
        }

        public Task PrePublish<T>(PublishContext<T> context)
            where T : class => Task.CompletedTask;

        public Task PublishFault<T>(PublishContext<T> context, Exception exception)
            where T : class => Task.CompletedTask;

        public Task PreSend<T>(SendContext<T> context)
            where T : class => Task.CompletedTask;

        public Task SendFault<T>(SendContext<T> context, Exception exception)
            where T : class => Task.CompletedTask;
    }
}
