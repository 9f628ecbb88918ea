namespace MailMesh.Queue.Webhooks;

/// <summary>Source-generated log messages of the Queue's webhooks (event ids 3090-3099).</summary>
internal static partial class WebhookLog
{
    [LoggerMessage(3090, LogLevel.Debug, "Webhook {Url} accepted {EventType} event for message {MessageId} ({StatusCode})")]
    public static partial void WebhookSent(this ILogger logger, string url, string eventType, Guid? messageId, int statusCode);

    [LoggerMessage(3091, LogLevel.Warning, "Webhook {Url} failed for {EventType} event of message {MessageId}; a message event is retried, a test event is not")]
    public static partial void WebhookFailed(this ILogger logger, Exception exception, string url, string eventType, Guid? messageId);

    [LoggerMessage(3092, LogLevel.Warning, "Could not read the stored webhook endpoints; the last list ({Count} enabled) stays in force until the store answers")]
    public static partial void StoredWebhooksFailed(this ILogger logger, int count, Exception exception);

    [LoggerMessage(3093, LogLevel.Warning, "The stored webhook endpoints can be read again")]
    public static partial void StoredWebhooksRecovered(this ILogger logger);

    [LoggerMessage(3094, LogLevel.Warning, "Could not record {Count} webhook deliveries in the history")]
    public static partial void HistoryRecordFailed(this ILogger logger, int count, Exception exception);

    [LoggerMessage(3095, LogLevel.Debug, "Pruned {Count} webhook history rows older than {OlderThan}")]
    public static partial void HistoryPruned(this ILogger logger, int count, DateTimeOffset olderThan);

    [LoggerMessage(3096, LogLevel.Warning, "Could not prune the webhook history; retried at the next round")]
    public static partial void HistoryPruneFailed(this ILogger logger, Exception exception);
}
