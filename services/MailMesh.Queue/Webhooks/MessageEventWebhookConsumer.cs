using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MailMesh.Contracts;
using MailMesh.Storage;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Webhooks;

/// <summary>
/// POSTs each <see cref="MessageEvent"/> as JSON to every configured endpoint and every enabled stored endpoint
/// (<see cref="StoredWebhooks"/>) that wants its type, and records each POST to a stored endpoint in its history. Queue
/// publishes events in batches (<see cref="MessageEvents"/>); a single <see cref="MessageEvent"/> comes from an older
/// Queue during an upgrade and is sent the same way.
/// </summary>
/// <remarks>
/// A batch is tried once. An endpoint that fails (a non-2xx answer or a timeout) is not tried again within that batch,
/// and each event it did not take goes back on the bus as a <see cref="WebhookRetry"/> for the endpoints that failed or
/// were skipped: <see cref="MessageEventWebhookConsumerDefinition"/> retries those one event at a time (1 s, 5 s, 30 s,
/// 2 min, 10 min, then the event is faulted), and the endpoints that took the event do not get it again. Delivery is at
/// least once all the same (a retry of a <see cref="WebhookRetry"/> posts to each of its endpoints again): receivers
/// de-duplicate on <see cref="EventIdHeader"/>, which each event keeps across retries.
/// </remarks>
internal sealed class MessageEventWebhookConsumer(
    WebhookSender sender,
    StoredWebhooks stored,
    IOptions<WebhookOptions> options) : IConsumer<MessageEvents>, IConsumer<MessageEvent>, IConsumer<WebhookRetry>
{
    internal const string HttpClientName = "MailMesh.Queue.Webhooks";
    internal const string SignatureHeader = "X-MailMesh-Signature";
    internal const string TimestampHeader = "X-MailMesh-Timestamp";
    internal const string EventIdHeader = "X-MailMesh-Event-Id";
    internal const string EventTypeHeader = "X-MailMesh-Event";

    /// <summary>Events of one batch POSTed at the same time (each to all of its endpoints at once).</summary>
    internal const int EventsAtOnce = 8;

    /// <summary>camelCase properties, enums by name, nulls omitted.</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The configured endpoints, parsed once per consume rather than once per event of a batch.</summary>
    private readonly List<WebhookTarget> _configured = [.. options.Value.Endpoints.Select(WebhookTarget.Of)];

    public Task Consume(ConsumeContext<MessageEvents> context)
    {
        // An event without its own id (none should come; Queue sets them) gets one derived from the bus message's id and its
        // place in the batch: the same on every delivery of that message.
        var batchId = context.MessageId ?? NewId.NextGuid();
        return SendOnceAsync(context, [.. context.Message.Events.Select((e, i) => e.EventId is null ? e with { EventId = Derive(batchId, i) } : e)]);
    }

    public Task Consume(ConsumeContext<MessageEvent> context) =>
        // From an older Queue: the bus message's id is the event's (the same on every retry).
        SendOnceAsync(context, [context.Message with { EventId = context.Message.EventId ?? context.MessageId ?? NewId.NextGuid() }]);

    /// <summary>One event for some endpoints: a failure throws, so the definition's retry policy tries it again.</summary>
    public async Task Consume(ConsumeContext<WebhookRetry> context)
    {
        var wanted = context.Message.Targets.ToHashSet(StringComparer.Ordinal);
        var targets = Targets(context.Message.Event.Type).Where(t => wanted.Contains(t.Key)).ToList();
        if (targets.Count == 0)
        {
            // Those endpoints were deleted, disabled or no longer want this type.
            return;
        }

        var outcome = await SendAsync(context.Message.Event, targets, context.CancellationToken);
        await stored.RecordAsync(outcome.History, context.CancellationToken);
        if (outcome.Failed.Count > 0)
        {
            throw outcome.Failed.Count == 1 ? outcome.Failed[0].Error : new AggregateException("Webhook delivery failed", outcome.Failed.Select(f => f.Error));
        }
    }

    /// <summary>
    /// Sends each event (each with its <see cref="MessageEvent.EventId"/>) to the endpoints that want it, once; what failed
    /// is published as <see cref="WebhookRetry"/>s.
    /// </summary>
    private async Task SendOnceAsync(ConsumeContext context, IReadOnlyList<MessageEvent> batch)
    {
        var work = batch
            .Select(e => (Event: e, Targets: Targets(e.Type).ToList()))
            .Where(w => w.Targets.Count > 0)
            .ToList();
        if (work.Count == 0)
        {
            return;
        }

        // An endpoint that failed once in this batch is skipped for the rest of it: a receiver that is down costs one
        // timeout per batch here, not one per event, and its events wait in their own retries.
        var failing = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        var history = new List<WebhookDelivery>();
        var retries = new List<WebhookRetry>();
        await Parallel.ForEachAsync(
            work,
            new ParallelOptions { MaxDegreeOfParallelism = EventsAtOnce, CancellationToken = context.CancellationToken },
            async (item, token) =>
            {
                var skipped = item.Targets.Where(t => failing.ContainsKey(t.Key)).ToList();
                var outcome = await SendAsync(item.Event, [.. item.Targets.Except(skipped)], token);
                foreach (var (target, _) in outcome.Failed)
                {
                    failing.TryAdd(target.Key, true);
                }

                lock (history)
                {
                    history.AddRange(outcome.History);
                    if (outcome.Failed.Count + skipped.Count > 0)
                    {
                        retries.Add(new WebhookRetry { Event = item.Event, Targets = [.. outcome.Failed.Select(f => f.Target.Key).Concat(skipped.Select(t => t.Key))] });
                    }
                }
            });
        await stored.RecordAsync(history, context.CancellationToken);

        // If one of these publishes fails, the batch fails and is tried again whole (at least once).
        foreach (var retry in retries)
        {
            await context.Publish(retry, context.CancellationToken);
        }
    }

    /// <summary>The configured and the enabled stored endpoints that want events of <paramref name="type"/>.</summary>
    private IEnumerable<WebhookTarget> Targets(MessageEventType type) =>
        _configured.Concat(stored.Enabled).Where(t => t.Accepts(type));

    private async Task<(List<WebhookDelivery> History, List<(WebhookTarget Target, Exception Error)> Failed)> SendAsync(
        MessageEvent message, List<WebhookTarget> targets, CancellationToken cancellationToken)
    {
        if (targets.Count == 0)
        {
            return ([], []);
        }

        var eventId = message.EventId!.Value.ToString();
        using var activity = QueueTelemetry.Source.StartActivity("queue.webhook", ActivityKind.Producer);
        activity?.SetTag("mailmesh.message.id", message.MessageId);
        activity?.SetTag("mailmesh.event.type", message.Type.ToString());

        var body = JsonSerializer.SerializeToUtf8Bytes(message, JsonOptions);
        var type = message.Type.ToString();
        var attempts = await Task.WhenAll(targets.Select(t => sender.SendAsync(t, type, message.MessageId, body, eventId, cancellationToken)));
        var failed = targets.Zip(attempts).Where(p => p.Second.Failure is not null).Select(p => (p.First, p.Second.Failure!)).ToList();
        if (failed.Count > 0)
        {
            activity?.SetStatus(ActivityStatusCode.Error);
        }

        var history = targets.Zip(attempts).Where(p => p.First.StoredId is not null)
            .Select(p => p.Second.ToDelivery(p.First.StoredId!.Value, eventId, type, message.MessageId))
            .ToList();
        return (history, failed);
    }

    /// <summary>A stable id for the event at <paramref name="index"/> of the bus message <paramref name="batchId"/>.</summary>
    private static Guid Derive(Guid batchId, int index)
    {
        Span<byte> bytes = stackalloc byte[16];
        batchId.TryWriteBytes(bytes);
        BitConverter.TryWriteBytes(bytes[12..], BitConverter.ToInt32(bytes[12..]) ^ (index + 1));
        return new Guid(bytes);
    }

    /// <summary>
    /// <c>sha256=</c> and the lowercase hex HMAC-SHA256 (RFC 2104) of <c>"{timestamp}.{body}"</c>: signing the timestamp
    /// too lets receivers reject replays of old requests.
    /// </summary>
    internal static string Sign(string secret, string timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.ASCII.GetBytes(timestamp + ".");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), signed);
        return "sha256=" + Convert.ToHexStringLower(mac);
    }
}

/// <summary>Endpoint and retry schedule of the webhook consumer.</summary>
internal sealed class MessageEventWebhookConsumerDefinition : ConsumerDefinition<MessageEventWebhookConsumer>
{
    /// <summary>Back-off for a receiver that is down or slow: about 13 minutes in all before the event is faulted.</summary>
    internal static TimeSpan[] RetryIntervals { get; set; } =
        [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(10)];

    public MessageEventWebhookConsumerDefinition()
    {
        EndpointName = "queue-webhooks";

        // Each message is a few outbound HTTP requests; bounded so a slow receiver cannot exhaust sockets.
        ConcurrentMessageLimit = 16;
    }

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<MessageEventWebhookConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        endpointConfigurator.UseMessageRetry(retry => retry.Intervals(RetryIntervals));
    }
}
