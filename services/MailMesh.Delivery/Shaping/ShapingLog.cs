namespace MailMesh.Delivery.Shaping;

internal static partial class ShapingLog
{
    [LoggerMessage(EventId = 5601, Level = LogLevel.Warning, Message = "The shared shaping budget store cannot be reached; each replica uses its own budget ({Fallback}, expected replicas {ExpectedReplicas}) until it answers")]
    public static partial void SharedBudgetDown(ILogger logger, Exception exception, ShapingFallback fallback, int expectedReplicas);

    [LoggerMessage(EventId = 5602, Level = LogLevel.Warning, Message = "The shared shaping budget store answers again; budgets are shared across replicas")]
    public static partial void SharedBudgetBack(ILogger logger);

    [LoggerMessage(EventId = 5603, Level = LogLevel.Warning, Message = "Renewing shaping connection leases failed")]
    public static partial void RenewFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5604, Level = LogLevel.Warning, Message = "Reading the site actions (suspensions, lowered limits) failed; keeping the last ones read")]
    public static partial void RefreshFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5605, Level = LogLevel.Warning, Message = "Automation rule {Rule} fired on site {Site} (source IP {SourceIp}): {Action} until {Until}; reply: {Reply}")]
    public static partial void RuleFired(ILogger logger, string rule, string site, string sourceIp, string action, DateTimeOffset until, string reply);

    [LoggerMessage(EventId = 5606, Level = LogLevel.Warning, Message = "Automation rule {Rule} on site {Site} could not be applied")]
    public static partial void RuleFailed(ILogger logger, Exception exception, string rule, string site);

    [LoggerMessage(EventId = 5607, Level = LogLevel.Debug, Message = "Message {MessageId} to {Domain} held back by shaping of site {Site} until {Until}: {Reason}")]
    public static partial void Held(ILogger logger, Guid messageId, string domain, string site, DateTimeOffset until, string reason);
}
