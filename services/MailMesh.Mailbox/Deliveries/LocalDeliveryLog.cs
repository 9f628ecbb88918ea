namespace MailMesh.Mailbox.Deliveries;

internal static partial class LocalDeliveryLog
{
    [LoggerMessage(EventId = 6001, Level = LogLevel.Debug, Message = "Message {MessageId} to {Domain}: lease {LeaseId} not taken (re-issued or held by another consumer); nothing stored")]
    public static partial void LeaseNotTaken(ILogger logger, Guid messageId, string domain, Guid leaseId);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Debug, Message = "Message {MessageId} to {Domain}: {Delivered} stored, {Deferred} deferred, {Bounced} bounced")]
    public static partial void Stored(ILogger logger, Guid messageId, string domain, int delivered, int deferred, int bounced);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "Message {MessageId} to {Domain}: the mail store failed; its recipients are deferred")]
    public static partial void StoreFailed(ILogger logger, Exception exception, Guid messageId, string domain);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Warning, Message = "Message {MessageId}: recording the result of lease {LeaseId} failed ({Failures} times); retrying in {Delay}")]
    public static partial void RecordFailed(ILogger logger, Exception exception, Guid messageId, Guid leaseId, int failures, TimeSpan delay);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Warning, Message = "Message {MessageId}: the spool did not take the result of lease {LeaseId}; published it for Queue to record")]
    public static partial void ResultPublished(ILogger logger, Exception exception, Guid messageId, Guid leaseId);

    [LoggerMessage(EventId = 6006, Level = LogLevel.Error, Message = "Message {MessageId}: the result of lease {LeaseId} could be neither recorded nor published; the lease will run out and a new attempt will report the stored message")]
    public static partial void ResultLost(ILogger logger, Exception exception, Guid messageId, Guid leaseId);
}
