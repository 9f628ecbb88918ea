using System.Net;

namespace MailMesh.Delivery;

internal static partial class DeliveryLog
{
    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Message {MessageId} to {Domain}: {Delivered} delivered, {Deferred} deferred, {Bounced} bounced via {RemoteHost}")]
    public static partial void Attempted(ILogger logger, Guid messageId, string domain, int delivered, int deferred, int bounced, string? remoteHost);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Message {MessageId} is not in the spool; deferring its recipients at {Domain}")]
    public static partial void MessageMissing(ILogger logger, Guid messageId, string domain);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "MX resolution of {Domain} timed out after {Timeout}")]
    public static partial void ResolveTimedOut(ILogger logger, string domain, TimeSpan timeout);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Debug, Message = "{Host}[{Address}] unusable, trying the next: {Reason}")]
    public static partial void Failover(ILogger logger, string host, IPEndPoint address, string reason);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Debug, Message = "Opened SMTP connection to {Host}[{Address}]: {Greeting} (TLS: {Tls}, verified: {Verified})")]
    public static partial void Connected(ILogger logger, string host, IPEndPoint address, string greeting, string tls, bool verified);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Debug, Message = "Closing SMTP connection to {Address}: {Reason}")]
    public static partial void Closing(ILogger logger, IPEndPoint address, string reason);

    [LoggerMessage(EventId = 5007, Level = LogLevel.Debug, Message = "Pooled connection to {Address} failed RSET, opening a fresh one")]
    public static partial void StaleConnection(ILogger logger, IPEndPoint address, Exception exception);

    [LoggerMessage(EventId = 5008, Level = LogLevel.Debug, Message = "Closing idle SMTP connections failed")]
    public static partial void SweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5009, Level = LogLevel.Debug, Message = "TLS with {Host}[{Address}] failed, retrying in clear text (opportunistic TLS): {Reason}")]
    public static partial void TlsFallback(ILogger logger, string host, IPEndPoint address, string reason);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Debug, Message = "{Address} took too many recipients for one transaction; sending {Count} more in another")]
    public static partial void MoreRecipients(ILogger logger, IPEndPoint address, int count);

    [LoggerMessage(EventId = 5011, Level = LogLevel.Debug, Message = "Skipping delivery of {MessageId} to {Domain}: its lease expired at {LeaseExpiresAt} (the recipients were claimed again)")]
    public static partial void LeaseExpired(ILogger logger, Guid messageId, string domain, DateTimeOffset leaseExpiresAt);

    [LoggerMessage(EventId = 5012, Level = LogLevel.Debug, Message = "Not delivering {MessageId} to {Domain}: lease {LeaseId} was re-issued, is held by another attempt, or the message is gone")]
    public static partial void LeaseNotTaken(ILogger logger, Guid messageId, string domain, Guid leaseId);

    [LoggerMessage(EventId = 5013, Level = LogLevel.Warning, Message = "Stopped delivering {MessageId} to {Domain} before the end of data: lease {LeaseId} {Reason}")]
    public static partial void LeaseLost(ILogger logger, Guid messageId, string domain, Guid leaseId, string reason);

    [LoggerMessage(EventId = 5014, Level = LogLevel.Warning, Message = "Renewing lease {LeaseId} of {MessageId} failed; it is confirmed until {ConfirmedUntil}")]
    public static partial void RenewFailed(ILogger logger, Exception exception, Guid leaseId, Guid messageId, DateTimeOffset confirmedUntil);

    [LoggerMessage(EventId = 5015, Level = LogLevel.Warning, Message = "Recording the result of {MessageId} under lease {LeaseId} failed ({Failures} tries); retrying in {Delay}")]
    public static partial void RecordFailed(ILogger logger, Exception exception, Guid messageId, Guid leaseId, int failures, TimeSpan delay);

    [LoggerMessage(EventId = 5016, Level = LogLevel.Debug, Message = "Result of {MessageId} under lease {LeaseId} not recorded: the lease was re-issued meanwhile")]
    public static partial void ResultStale(ILogger logger, Guid messageId, Guid leaseId);

    [LoggerMessage(EventId = 5017, Level = LogLevel.Warning, Message = "The spool has not taken the result of {MessageId} under lease {LeaseId} ({Why}); published it for Queue to record")]
    public static partial void ResultPublished(ILogger logger, Guid messageId, Guid leaseId, string why);

    [LoggerMessage(EventId = 5019, Level = LogLevel.Warning, Message = "Gave up recording the result of {MessageId} under lease {LeaseId} in the spool after {Failures} tries ({Why}); it was published on the bus")]
    public static partial void RecordGivenUp(ILogger logger, Guid messageId, Guid leaseId, int failures, string why);

    [LoggerMessage(EventId = 5020, Level = LogLevel.Warning, Message = "Publishing the result of {MessageId} under lease {LeaseId} on the bus failed")]
    public static partial void PublishFailed(ILogger logger, Exception exception, Guid messageId, Guid leaseId);

    [LoggerMessage(EventId = 5018, Level = LogLevel.Critical, Message = "The result of {MessageId} under lease {LeaseId} could be neither recorded nor published; the attempt will be repeated when its lease expires")]
    public static partial void ResultLost(ILogger logger, Exception exception, Guid messageId, Guid leaseId);

    [LoggerMessage(EventId = 5021, Level = LogLevel.Warning, Message = "Taking the lease of {MessageId} ({LeaseId}) got no answer (try {Try}); asking again as the same owner in {Delay}")]
    public static partial void TakeRetried(ILogger logger, Exception exception, Guid messageId, Guid leaseId, int @try, TimeSpan delay);

    [LoggerMessage(EventId = 5022, Level = LogLevel.Warning, Message = "The content of {MessageId} ({Size} octets) could not be copied from the spool for this attempt; deferred")]
    public static partial void ContentNotLoaded(ILogger logger, Exception exception, Guid messageId, long size);

    [LoggerMessage(EventId = 5023, Level = LogLevel.Warning, Message = "No room for the local copy of {MessageId} ({Size} octets) within Delivery:MaxContentBytes ({MaxContentBytes}); deferred")]
    public static partial void ContentBudgetFull(ILogger logger, Guid messageId, long size, long maxContentBytes);
}
