namespace MailMesh.Mailbox.Protocols;

/// <summary>The POP3 and IMAP servers' logs (event ids 9100-9149). Nothing per message at Information.</summary>
internal static partial class MailboxProtocolLog
{
    [LoggerMessage(9100, LogLevel.Debug, "{Protocol} connection from {Client} lost")]
    public static partial void ConnectionLost(ILogger logger, string protocol, string client, Exception exception);

    [LoggerMessage(9101, LogLevel.Debug, "{Protocol} session from {Client} timed out")]
    public static partial void TimedOut(ILogger logger, string protocol, string client);

    [LoggerMessage(9102, LogLevel.Warning, "{Protocol} client {Client} pipelined octets after STARTTLS; discarded (CVE-2011-0411)")]
    public static partial void DiscardedAfterStartTls(ILogger logger, string protocol, string client);

    [LoggerMessage(9103, LogLevel.Warning, "{Protocol} login from {Client} failed: {Outcome}")]
    public static partial void LoginFailed(ILogger logger, string protocol, string client, string outcome);

    [LoggerMessage(9104, LogLevel.Debug, "{Protocol} login from {Client} as {Account}")]
    public static partial void LoggedIn(ILogger logger, string protocol, string client, string account);

    [LoggerMessage(9105, LogLevel.Error, "{Protocol}: the mail store failed")]
    public static partial void StoreFailed(ILogger logger, string protocol, Exception exception);

    [LoggerMessage(9106, LogLevel.Debug, "{Protocol} session from {Client} closed after {Errors} errors")]
    public static partial void TooManyErrors(ILogger logger, string protocol, string client, int errors);

    [LoggerMessage(9107, LogLevel.Warning, "{Protocol} connection from {Client} refused: {Reason}")]
    public static partial void ConnectionRefused(ILogger logger, string protocol, string client, string reason);

    [LoggerMessage(9108, LogLevel.Error, "{Protocol} session from {Client} failed")]
    public static partial void SessionFailed(ILogger logger, string protocol, string client, Exception exception);
}
