using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MailMesh.Contracts;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Webhooks;

/// <summary>
/// POSTs each <see cref="MessageEvent"/> as JSON to every configured endpoint that wants its type. A non-2xx answer
/// or a timeout fails the message, so <see cref="MessageEventWebhookConsumerDefinition"/> retries it.
/// </summary>
internal sealed class MessageEventWebhookConsumer(
    IHttpClientFactory httpClientFactory,
    IOptions<WebhookOptions> options,
    TimeProvider time,
    ILogger<MessageEventWebhookConsumer> logger) : IConsumer<MessageEvent>
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
        var endpoints = _options.Endpoints.Where(e => e.Accepts(message.Type)).ToList();
        if (endpoints.Count == 0)
        {
            return;
        }

        using var activity = QueueTelemetry.Source.StartActivity("queue.webhook", ActivityKind.Producer);
        activity?.SetTag("mailmesh.message.id", message.MessageId);
        activity?.SetTag("mailmesh.event.type", message.Type.ToString());

        var body = JsonSerializer.SerializeToUtf8Bytes(message, JsonOptions);

        // The same id on every retry, so receivers can de-duplicate (delivery is at least once).
        var eventId = (context.MessageId ?? NewId.NextGuid()).ToString();
        var failures = await Task.WhenAll(endpoints.Select(e => PostAsync(e, message, body, eventId, context.CancellationToken)));
        var errors = failures.OfType<Exception>().ToList();
        if (errors.Count > 0)
        {
            activity?.SetStatus(ActivityStatusCode.Error);
            throw errors.Count == 1 ? errors[0] : new AggregateException("Webhook delivery failed", errors);
        }
    }

    /// <summary>Posts to one endpoint; returns the failure instead of throwing so the other endpoints still get the event.</summary>
    private async Task<Exception?> PostAsync(WebhookEndpointOptions endpoint, MessageEvent message, byte[] body, string eventId, CancellationToken cancellationToken)
    {
        var url = endpoint.Url!;
        using var timeout = new CancellationTokenSource(_options.Timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            request.Headers.Add(EventIdHeader, eventId);
            request.Headers.Add(EventTypeHeader, message.Type.ToString());
            var timestamp = time.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            request.Headers.Add(TimestampHeader, timestamp);
            if (!string.IsNullOrEmpty(endpoint.Secret))
            {
                request.Headers.Add(SignatureHeader, Sign(endpoint.Secret, timestamp, body));
            }

            using var client = httpClientFactory.CreateClient(HttpClientName);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            if (!response.IsSuccessStatusCode)
            {
                throw new HttpRequestException(
                    $"Webhook {url} answered {(int)response.StatusCode} {response.ReasonPhrase}",
                    inner: null,
                    response.StatusCode);
            }

            logger.WebhookSent(url, message.Type, message.MessageId, (int)response.StatusCode);
            return null;
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // Not an OperationCanceledException: that would read as "the consumer was cancelled", not "retry me".
            var failure = new TimeoutException($"Webhook {url} did not answer within {_options.Timeout}", ex);
            logger.WebhookFailed(failure, url, message.Type, message.MessageId);
            return failure;
        }
        catch (HttpRequestException ex)
        {
            logger.WebhookFailed(ex, url, message.Type, message.MessageId);
            return ex;
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
