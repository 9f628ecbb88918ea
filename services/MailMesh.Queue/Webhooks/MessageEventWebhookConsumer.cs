using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MailMesh.Contracts;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Webhooks;

/// <summary>
/// POSTs each <see cref="MessageEvent"/> as JSON to every configured endpoint and every enabled stored endpoint
/// (<see cref="StoredWebhooks"/>) that wants its type, and records each POST to a stored endpoint in its history. A
/// non-2xx answer or a timeout fails the message, so <see cref="MessageEventWebhookConsumerDefinition"/> retries it.
/// </summary>
internal sealed class MessageEventWebhookConsumer(
    WebhookSender sender,
    StoredWebhooks stored,
    IOptions<WebhookOptions> options) : IConsumer<MessageEvent>
{
    internal const string HttpClientName = "MailMesh.Queue.Webhooks";
    internal const string SignatureHeader = "X-MailMesh-Signature";
    internal const string TimestampHeader = "X-MailMesh-Timestamp";
    internal const string EventIdHeader = "X-MailMesh-Event-Id";
    internal const string EventTypeHeader = "X-MailMesh-Event";

    /// <summary>camelCase properties, enums by name, nulls omitted.</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly WebhookOptions _options = options.Value;

    public async Task Consume(ConsumeContext<MessageEvent> context)
    {
        var message = context.Message;
        var targets = _options.Endpoints.Where(e => e.Accepts(message.Type)).Select(WebhookTarget.Of)
            .Concat(stored.Enabled.Where(t => t.Accepts(message.Type)))
            .ToList();
        if (targets.Count == 0)
        {
            return;
        }

        using var activity = QueueTelemetry.Source.StartActivity("queue.webhook", ActivityKind.Producer);
        activity?.SetTag("mailmesh.message.id", message.MessageId);
        activity?.SetTag("mailmesh.event.type", message.Type.ToString());

        var body = JsonSerializer.SerializeToUtf8Bytes(message, JsonOptions);

        // The same id on every retry, so receivers can de-duplicate (delivery is at least once).
        var eventId = (context.MessageId ?? NewId.NextGuid()).ToString();
        var type = message.Type.ToString();
        var attempts = await Task.WhenAll(targets.Select(t => sender.SendAsync(t, type, message.MessageId, body, eventId, context.CancellationToken)));
        await stored.RecordAsync(
            [.. targets.Zip(attempts).Where(p => p.First.StoredId is not null).Select(p => p.Second.ToDelivery(p.First.StoredId!.Value, eventId, type, message.MessageId))],
            context.CancellationToken);
        var errors = attempts.Select(a => a.Failure).OfType<Exception>().ToList();
        if (errors.Count > 0)
        {
            activity?.SetStatus(ActivityStatusCode.Error);
            throw errors.Count == 1 ? errors[0] : new AggregateException("Webhook delivery failed", errors);
        }
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
