using System.Net;

namespace MailMesh.Ingress;

/// <summary>Source-generated Ingress logs; event ids are stable (1000-1099).</summary>
internal static partial class Log
{
    [LoggerMessage(1000, LogLevel.Debug, "SMTP session from {Client} started")]
    public static partial void SessionStarted(ILogger logger, IPEndPoint? client);

    [LoggerMessage(1001, LogLevel.Debug, "SMTP session from {Client} ended")]
    public static partial void SessionEnded(ILogger logger, IPEndPoint? client);

    [LoggerMessage(1002, LogLevel.Debug, "SMTP session from {Client} timed out")]
    public static partial void SessionTimedOut(ILogger logger, IPEndPoint? client);

    [LoggerMessage(1003, LogLevel.Debug, "SMTP session from {Client} closed after {Errors} errors")]
    public static partial void TooManyErrors(ILogger logger, IPEndPoint? client, int errors);

    [LoggerMessage(1004, LogLevel.Debug, "SMTP connection from {Client} lost")]
    public static partial void ConnectionLost(ILogger logger, IPEndPoint? client, Exception exception);

    [LoggerMessage(1005, LogLevel.Error, "SMTP session from {Client} failed")]
    public static partial void SessionFailed(ILogger logger, IPEndPoint? client, Exception exception);

    [LoggerMessage(1006, LogLevel.Information, "SMTP session from {Client} closed for shutdown (transaction interrupted: {Interrupted})")]
    public static partial void ClosedForShutdown(ILogger logger, IPEndPoint? client, bool interrupted);

    [LoggerMessage(1010, LogLevel.Warning, "Policy check {Check} for {Client} failed; answering 4xx")]
    public static partial void PolicyUnavailable(ILogger logger, string check, string client, Exception exception);

    [LoggerMessage(1011, LogLevel.Debug, "Policy refused {Check} for {Client}: {Reply}")]
    public static partial void PolicyRefused(ILogger logger, string check, string client, string reply);

    [LoggerMessage(1020, LogLevel.Debug, "Message {MessageId} from <{Sender}> for {RecipientCount} recipients ({Size} octets) accepted from {Client}")]
    public static partial void MessageAccepted(ILogger logger, Guid messageId, string sender, int recipientCount, long size, string client);

    [LoggerMessage(1021, LogLevel.Debug, "Message from <{Sender}> refused at end of data from {Client}: {Reply}")]
    public static partial void MessageRefused(ILogger logger, string sender, string client, string reply);

    [LoggerMessage(1022, LogLevel.Error, "Spool commit of message {MessageId} failed; answering 451")]
    public static partial void SpoolFailed(ILogger logger, Guid messageId, Exception exception);

    [LoggerMessage(1025, LogLevel.Warning, "Announcing {Count} committed messages (the first {MessageId}) failed; the Queue's poll picks them up from the spool")]
    public static partial void AnnouncementFailed(ILogger logger, int count, Guid messageId, Exception exception);

    [LoggerMessage(1026, LogLevel.Debug, "Announcement of message {MessageId} dropped (too many wait for the broker, or Ingress is stopping); the Queue's poll picks it up from the spool")]
    public static partial void AnnouncementDropped(ILogger logger, Guid messageId);

    [LoggerMessage(1024, LogLevel.Debug, "Message {MessageId} from {Client} was already stored; idempotent resubmission acknowledged")]
    public static partial void DuplicateSubmission(ILogger logger, Guid messageId, string client);

    [LoggerMessage(1032, LogLevel.Debug, "TLS handshake with {Client} failed")]
    public static partial void HandshakeFailed(ILogger logger, string client, Exception exception);

    [LoggerMessage(1033, LogLevel.Warning, "{Client} pipelined {Count} octets after STARTTLS; discarded (RFC 3207 §4.2, CVE-2011-0411)")]
    public static partial void DiscardedAfterStartTls(ILogger logger, string client, long count);

    [LoggerMessage(1040, LogLevel.Debug, "AUTH {Mechanism} as {User} from {Client} succeeded")]
    public static partial void AuthSucceeded(ILogger logger, string mechanism, string user, string client);

    [LoggerMessage(1041, LogLevel.Warning, "AUTH {Mechanism} as {User} from {Client} failed")]
    public static partial void AuthFailed(ILogger logger, string mechanism, string user, string client);

    [LoggerMessage(1042, LogLevel.Warning, "AUTH from {Client} refused: locked out after repeated failures")]
    public static partial void AuthLockedOut(ILogger logger, string client);

    [LoggerMessage(1050, LogLevel.Debug, "Connection from {Client} refused: {Reason}")]
    public static partial void ConnectionRefused(ILogger logger, string client, string reason);

    [LoggerMessage(1051, LogLevel.Debug, "{Client} closed for improper pipelining: {Reason}")]
    public static partial void ImproperPipelining(ILogger logger, string client, string reason);

    [LoggerMessage(1052, LogLevel.Debug, "{Client} sent message content below the minimum data rate; closing")]
    public static partial void DataRateTooLow(ILogger logger, string client);

    [LoggerMessage(1053, LogLevel.Warning, "{Client} sent a BDAT whose chunk-size cannot be read; closing (RFC 3030 §2)")]
    public static partial void BdatSyntax(ILogger logger, string client);

    [LoggerMessage(1054, LogLevel.Warning, "Message from {Client} refused at {Stage}: Ingress:MaxBufferedBytes is used up ({InUse} octets buffered); answering 452 4.3.1")]
    public static partial void BufferBudgetExhausted(ILogger logger, string client, string stage, long inUse);
}
