namespace MailMesh.Policy;

/// <summary>Source-generated log messages of the Policy service (event ids 2000-2099).</summary>
internal static partial class Log
{
    [LoggerMessage(2000, LogLevel.Debug, "Refused {Check} from {Client}: {ReplyCode} {EnhancedCode} ({Reason})")]
    public static partial void Refused(this ILogger logger, string check, string client, int replyCode, string enhancedCode, string reason);

    [LoggerMessage(2001, LogLevel.Warning, "Policy store unavailable during the {Check} check; answering a temporary failure")]
    public static partial void StoreUnavailable(this ILogger logger, Exception exception, string check);

    [LoggerMessage(2002, LogLevel.Warning, "Policy:RelayNetworks includes {Network}, broader than an IPv4 /24 or an IPv6 /48: every client in it may relay to any domain without authenticating")]
    public static partial void BroadRelayNetwork(this ILogger logger, string network);

    [LoggerMessage(2010, LogLevel.Information, "Suppression added for {Address}: {Reason}")]
    public static partial void SuppressionAdded(this ILogger logger, string address, string reason);

    [LoggerMessage(2011, LogLevel.Information, "Suppression removed for {Address}")]
    public static partial void SuppressionRemoved(this ILogger logger, string address);
}
