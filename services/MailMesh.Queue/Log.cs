using MailMesh.Storage;

namespace MailMesh.Queue;

/// <summary>Source-generated log messages of the Queue service (event ids 3000-3099).</summary>
internal static partial class Log
{
    [LoggerMessage(3000, LogLevel.Information, "Queue scheduler started: poll every {PollInterval}, rounds at least {ClaimInterval} apart while poked, batches of {BatchSize}, leases of {LeaseDuration}")]
    public static partial void SchedulerStarted(this ILogger logger, TimeSpan pollInterval, TimeSpan claimInterval, int batchSize, TimeSpan leaseDuration);

    [LoggerMessage(3001, LogLevel.Debug, "Claimed {Recipients} recipients in {Jobs} jobs")]
    public static partial void Claimed(this ILogger logger, int recipients, int jobs);

    [LoggerMessage(3002, LogLevel.Warning, "Claim round failed ({Failures} in a row); retrying in {Delay}")]
    public static partial void ClaimFailed(this ILogger logger, Exception exception, int failures, TimeSpan delay);

    [LoggerMessage(3003, LogLevel.Warning, "Publishing DeliverMessage for message {MessageId} ({Domain}) failed; the lease expiry at {LeaseExpiresAt} re-drives it")]
    public static partial void DispatchFailed(this ILogger logger, Exception exception, Guid messageId, string domain, DateTimeOffset leaseExpiresAt);

    [LoggerMessage(3004, LogLevel.Warning, "No scheduler reached the spool from {From} to {To} ({Length}): the lease clock stopped, {Extended} in-flight recipients had their lease extended by that long")]
    public static partial void LeaseClockPaused(this ILogger logger, DateTimeOffset from, DateTimeOffset to, TimeSpan length, int extended);

    [LoggerMessage(3010, LogLevel.Debug, "Message {MessageId} recipient {RecipientId} {State} ({ReplyCode} {EnhancedCode})")]
    public static partial void RecipientCompleted(this ILogger logger, Guid messageId, long recipientId, RecipientState state, int? replyCode, string? enhancedCode);

    [LoggerMessage(3013, LogLevel.Debug, "Suppressed {Address} after a hard bounce ({EnhancedCode})")]
    public static partial void RecipientSuppressed(this ILogger logger, string address, string? enhancedCode);

    [LoggerMessage(3011, LogLevel.Debug, "Result for message {MessageId} under lease {LeaseId}: {Ignored} of {Total} updates were stale or duplicate and not applied")]
    public static partial void StaleResults(this ILogger logger, Guid messageId, Guid leaseId, int ignored, int total);

    [LoggerMessage(3012, LogLevel.Warning, "Result for unknown message {MessageId} ignored (purged or never stored)")]
    public static partial void UnknownMessage(this ILogger logger, Guid messageId);

    [LoggerMessage(3020, LogLevel.Debug, "Queued {Kind} DSN {DsnId} for message {MessageId} to <{Sender}> covering {Recipients} recipients")]
    public static partial void DsnQueued(this ILogger logger, string kind, Guid dsnId, Guid messageId, string sender, int recipients);

    [LoggerMessage(3021, LogLevel.Debug, "DSN {DsnId} for message {MessageId} already queued")]
    public static partial void DsnDuplicate(this ILogger logger, Guid dsnId, Guid messageId);

    [LoggerMessage(3030, LogLevel.Information, "Purged {Count} completed messages older than {OlderThan}")]
    public static partial void Purged(this ILogger logger, int count, DateTimeOffset olderThan);

    [LoggerMessage(3031, LogLevel.Warning, "Purging completed messages failed")]
    public static partial void PurgeFailed(this ILogger logger, Exception exception);

    [LoggerMessage(3040, LogLevel.Warning, "Publishing {MessageType} failed; the spool holds what it announced")]
    public static partial void EventPublishFailed(this ILogger logger, Exception exception, string messageType);

    [LoggerMessage(3041, LogLevel.Warning, "Message {MessageId} is older than Queue:MaxAge ({MaxAge}); expiring {Recipients} recipients at {Domain} instead of attempting them")]
    public static partial void ExpiredAtClaim(this ILogger logger, Guid messageId, TimeSpan maxAge, int recipients, string domain);

    [LoggerMessage(3042, LogLevel.Warning, "Result round failed ({Failures} in a row); retrying in {Delay}")]
    public static partial void ResultRoundFailed(this ILogger logger, Exception exception, int failures, TimeSpan delay);

    [LoggerMessage(3043, LogLevel.Warning, "Applying the result of lease {LeaseId} (message {MessageId}, try {Tries}) failed; it is tried again later")]
    public static partial void ResultApplyFailed(this ILogger logger, Exception exception, Guid leaseId, Guid messageId, int tries);

    [LoggerMessage(3047, LogLevel.Warning, "Applying a batch of {Count} recorded results failed; applying them one by one")]
    public static partial void ResultBatchFailed(this ILogger logger, Exception exception, int count);

    [LoggerMessage(3044, LogLevel.Error, "The recorded result of lease {LeaseId} (message {MessageId}) is unreadable; it is kept and tried again (fix the payload or delete the row by hand)")]
    public static partial void ResultUnreadable(this ILogger logger, Exception exception, Guid leaseId, Guid messageId);

    [LoggerMessage(3045, LogLevel.Debug, "Result of message {MessageId} under lease {LeaseId} arrived over the bus and was recorded: {Recorded}")]
    public static partial void ResultRecordedFromBus(this ILogger logger, Guid messageId, Guid leaseId, bool recorded);

    [LoggerMessage(3046, LogLevel.Information, "Queue result applier started: batches of {BatchSize}, {Concurrency} at once")]
    public static partial void ResultApplierStarted(this ILogger logger, int batchSize, int concurrency);

    [LoggerMessage(3047, LogLevel.Debug, "Returned mail {ReturnedId} about message {MessageId}: {Reports} report(s), {Applied} applied")]
    public static partial void ReturnedMailProcessed(this ILogger logger, Guid returnedId, Guid? messageId, int reports, int applied);

    [LoggerMessage(3048, LogLevel.Warning, "Returned mail {ReturnedId} could not be processed; it is retried when its lease expires")]
    public static partial void ReturnedMailFailed(this ILogger logger, Exception exception, Guid returnedId);
}
