namespace MailMesh.Dns;

internal static partial class DnsLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Debug, Message = "MX of {Domain}: {Status} ({HostCount} hosts, cached for {Ttl})")]
    public static partial void Resolved(ILogger logger, string domain, string status, int hostCount, TimeSpan ttl);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "DNS {QuestionType} query for {Name} failed temporarily: {Error}")]
    public static partial void TemporaryFailure(ILogger logger, string questionType, string name, string error);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "DNS resolvers: {Servers}")]
    public static partial void Servers(ILogger logger, string servers);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Debug, Message = "DNS cache over {MaxEntries} entries: evicted {Evicted}")]
    public static partial void Evicted(ILogger logger, int maxEntries, int evicted);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "MX resolution of {Domain} failed unexpectedly")]
    public static partial void Unexpected(ILogger logger, string domain, Exception exception);
}
