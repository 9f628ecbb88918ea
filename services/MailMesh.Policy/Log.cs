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

    [LoggerMessage(2120, LogLevel.Information, "Suppressions imported through the admin API: {Added} added, {Errors} lines refused")]
    public static partial void SuppressionsImported(this ILogger logger, int added, int errors);

    [LoggerMessage(2020, LogLevel.Warning, "Content scanner {Scanner} at {Address} is unavailable; answering its configured action")]
    public static partial void ScannerUnavailable(this ILogger logger, Exception exception, string scanner, string address);

    [LoggerMessage(2021, LogLevel.Debug, "Not scanned by {Scanner}: the message has {Length} octets, more than {Key} ({Limit})")]
    public static partial void ScanSkipped(this ILogger logger, string scanner, long length, string key, long limit);

    [LoggerMessage(2022, LogLevel.Debug, "clamd found {Virus} in a message from {Client}")]
    public static partial void VirusFound(this ILogger logger, string virus, string client);

    [LoggerMessage(2023, LogLevel.Warning, "clamd refused the stream as too large: set {Key} ({Limit}) at most clamd's StreamMaxLength")]
    public static partial void ClamdStreamLimit(this ILogger logger, string key, long limit);

    [LoggerMessage(2030, LogLevel.Warning, "DNSBL lookup of {Query} failed ({Problem}); the zone is not counted for this client")]
    public static partial void DnsblLookupFailed(this ILogger logger, string query, string problem);

    [LoggerMessage(2031, LogLevel.Debug, "Client {Client} listed: {Zones} (score {Score}, threshold {Threshold})")]
    public static partial void DnsblListed(this ILogger logger, string client, string zones, double score, double threshold);
}
