using System.Globalization;
using System.Net.Http.Headers;
using MailMesh.Contracts;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Webhooks;

/// <summary>A receiver of message events: from configuration (<see cref="StoredId"/> null) or stored through the admin API.</summary>
internal sealed record WebhookTarget(string Url, string? Secret, IReadOnlySet<MessageEventType>? Events, Guid? StoredId)
{
    /// <summary>Names this receiver in a <see cref="Contracts.WebhookRetry"/>: its stored id, or its URL when configured.</summary>
    public string Key => StoredId is { } id ? "stored:" + id.ToString("D") : "config:" + Url;

    /// <summary>True when this receiver wants events of <paramref name="type"/> (no filter: every event).</summary>
    public bool Accepts(MessageEventType type) => Events is null || Events.Contains(type);

    public static WebhookTarget Of(WebhookEndpointOptions endpoint)
    {
        // Validated at start-up, so the list parses.
        var events = WebhookEndpointOptions.TryParseEvents(endpoint.Events, out var parsed, out _) ? parsed : null;
        return new WebhookTarget(endpoint.Url!, string.IsNullOrEmpty(endpoint.Secret) ? null : endpoint.Secret, events, null);
    }

    /// <summary>A stored endpoint; an event list that no longer parses (an event type removed) sends nothing rather than everything.</summary>
    public static WebhookTarget Of(WebhookEndpoint endpoint) =>
        new(endpoint.Url, string.IsNullOrEmpty(endpoint.Secret) ? null : endpoint.Secret,
            WebhookEndpointOptions.TryParseEvents(endpoint.Events, out var events, out _) ? events : new HashSet<MessageEventType>(), endpoint.Id);
}

/// <summary>What one POST came to: the status answered, or why none came, and how long it took.</summary>
internal sealed record WebhookAttempt(DateTimeOffset At, int? StatusCode, string? Error, TimeSpan Duration, Exception? Failure)
{
    public bool Succeeded => Failure is null;

    /// <summary>The history row of this attempt to a stored endpoint.</summary>
    public WebhookDelivery ToDelivery(Guid endpointId, string eventId, string eventType, Guid? messageId) => new()
    {
        EndpointId = endpointId,
        EventId = eventId,
        EventType = eventType,
        MessageId = messageId,
        At = At,
        StatusCode = StatusCode,
        Error = Error,
        DurationMs = (int)Math.Min(int.MaxValue, Math.Round(Duration.TotalMilliseconds)),
    };
}

/// <summary>
/// POSTs one event body to one receiver with the event headers and, when the receiver has a secret, the signature;
/// never throws for the receiver's failures (they are in the <see cref="WebhookAttempt"/>), only for cancellation.
/// </summary>
internal sealed class WebhookSender(
    IHttpClientFactory httpClientFactory,
    IOptions<WebhookOptions> options,
    TimeProvider time,
    ILogger<WebhookSender> logger)
{
    private const int MaxErrorLength = 500;
    private readonly WebhookOptions _options = options.Value;

    public async Task<WebhookAttempt> SendAsync(
        WebhookTarget target, string eventType, Guid? messageId, byte[] body, string eventId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var url = target.Url;
        var at = time.GetUtcNow();
        var started = time.GetTimestamp();
        using var timeout = new CancellationTokenSource(_options.Timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            request.Headers.Add(MessageEventWebhookConsumer.EventIdHeader, eventId);
            request.Headers.Add(MessageEventWebhookConsumer.EventTypeHeader, eventType);
            var timestamp = at.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            request.Headers.Add(MessageEventWebhookConsumer.TimestampHeader, timestamp);
            if (target.Secret is { } secret)
            {
                request.Headers.Add(MessageEventWebhookConsumer.SignatureHeader, MessageEventWebhookConsumer.Sign(secret, timestamp, body));
            }

            using var client = httpClientFactory.CreateClient(MessageEventWebhookConsumer.HttpClientName);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            var status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
            {
                var failure = new HttpRequestException($"Webhook {url} answered {status} {response.ReasonPhrase}", inner: null, response.StatusCode);
                logger.WebhookFailed(failure, url, eventType, messageId);
                return new WebhookAttempt(at, status, Truncate(failure.Message), time.GetElapsedTime(started), failure);
            }

            logger.WebhookSent(url, eventType, messageId, status);
            return new WebhookAttempt(at, status, null, time.GetElapsedTime(started), null);
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // Not an OperationCanceledException: that would read as "the consumer was cancelled", not "retry me".
            var failure = new TimeoutException($"Webhook {url} did not answer within {_options.Timeout}", ex);
            logger.WebhookFailed(failure, url, eventType, messageId);
            return new WebhookAttempt(at, null, Truncate(failure.Message), time.GetElapsedTime(started), failure);
        }
        catch (HttpRequestException ex)
        {
            logger.WebhookFailed(ex, url, eventType, messageId);
            return new WebhookAttempt(at, null, Truncate($"Webhook {url} failed: {ex.Message}"), time.GetElapsedTime(started), ex);
        }
    }

    private static string Truncate(string text) => text.Length <= MaxErrorLength ? text : text[..MaxErrorLength] + "…";
}
