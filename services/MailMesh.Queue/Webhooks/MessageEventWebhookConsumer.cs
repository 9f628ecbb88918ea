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
/// Queue during an upgrade and is sent the same way. A non-2xx answer or a timeout fails the bus message, so
/// <see cref="MessageEventWebhookConsumerDefinition"/> retries it: every event of it again, to every endpoint that wants
/// it (at least once; receivers de-duplicate on <see cref="EventIdHeader"/>, which each event keeps across retries).
/// </summary>
internal sealed class MessageEventWebhookConsumer(
    WebhookSender sender,
    StoredWebhooks stored,
    IOptions<WebhookOptions> options) : IConsumer<MessageEvents>, IConsumer<MessageEvent>
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

    private readonly WebhookOptions _options = options.Value;

    public Task Consume(ConsumeContext<MessageEvents> context)
    {
        // An event without its own id (none should come; Queue sets them) gets one derived from the bus message's id and its
        // place in the batch: the same on every retry of that message.
        var batchId = context.MessageId ?? NewId.NextGuid();
        return SendAllAsync([.. context.Message.Events.Select((e, i) => e.EventId is null ? e with { EventId = Derive(batchId, i) } : e)], context.CancellationToken);
    }

    public Task Consume(ConsumeContext<MessageEvent> context) =>
        // From an older Queue: the bus message's id is the event's (the same on every retry).
        SendAllAsync([context.Message with { EventId = context.Message.EventId ?? context.MessageId ?? NewId.NextGuid() }], context.CancellationToken);

    /// <summary>Sends each event (each with its <see cref="MessageEvent.EventId"/>) to the endpoints that want it.</summary>
    private async Task SendAllAsync(IReadOnlyList<MessageEvent> batch, CancellationToken cancellationToken)
    {
        var configured = _options.Endpoints.Select(WebhookTarget.Of).ToList();
        var enabled = stored.Enabled;
        var work = batch
            .Select(e => (Event: e, Targets: configured.Concat(enabled).Where(t => t.Accepts(e.Type)).ToList()))
            .Where(w => w.Targets.Count > 0)
            .ToList();
        if (work.Count == 0)
        {
            return;
        }

        var deliveries = new List<WebhookDelivery>();
        var errors = new List<Exception>();
        await Parallel.ForEachAsync(
            work,
            new ParallelOptions { MaxDegreeOfParallelism = EventsAtOnce, CancellationToken = cancellationToken },
            async (item, token) =>
            {
                var (delivered, failures) = await SendAsync(item.Event, item.Targets, token);
                lock (deliveries)
                {
                    deliveries.AddRange(delivered);
                    errors.AddRange(failures);
                }
            });
        await stored.RecordAsync(deliveries, cancellationToken);
        if (errors.Count > 0)
        {
            throw errors.Count == 1 ? errors[0] : new AggregateException("Webhook delivery failed", errors);
        }
    }

    private async Task<(IEnumerable<WebhookDelivery> History, IEnumerable<Exception> Failures)> SendAsync(
        MessageEvent message, List<WebhookTarget> targets, CancellationToken cancellationToken)
    {
        var eventId = message.EventId!.Value.ToString();
        using var activity = QueueTelemetry.Source.StartActivity("queue.webhook", ActivityKind.Producer);
        activity?.SetTag("mailmesh.message.id", message.MessageId);
        activity?.SetTag("mailmesh.event.type", message.Type.ToString());

        var body = JsonSerializer.SerializeToUtf8Bytes(message, JsonOptions);
        var type = message.Type.ToString();
        var attempts = await Task.WhenAll(targets.Select(t => sender.SendAsync(t, type, message.MessageId, body, eventId, cancellationToken)));
        var failures = attempts.Select(a => a.Failure).OfType<Exception>().ToList();
        if (failures.Count > 0)
        {
            activity?.SetStatus(ActivityStatusCode.Error);
        }

        var history = targets.Zip(attempts).Where(p => p.First.StoredId is not null)
            .Select(p => p.Second.ToDelivery(p.First.StoredId!.Value, eventId, type, message.MessageId))
            .ToList();
        return (history, failures);
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
