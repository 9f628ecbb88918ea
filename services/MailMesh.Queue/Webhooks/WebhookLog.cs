namespace MailMesh.Queue.Webhooks;

/// <summary>Source-generated log messages of the Queue's webhooks (event ids 3090-3099).</summary>
internal static partial class WebhookLog
{
    [LoggerMessage(3090, LogLevel.Debug, "Webhook {Url} accepted {EventType} event for message {MessageId} ({StatusCode})")]
    public static partial void WebhookSent(this ILogger logger, string url, Contracts.MessageEventType eventType, Guid messageId, int statusCode);

    [LoggerMessage(3091, LogLevel.Warning, "Webhook {Url} failed for {EventType} event of message {MessageId}; the event is retried")]
    public static partial void WebhookFailed(this ILogger logger, Exception exception, string url, Contracts.MessageEventType eventType, Guid messageId);

}
