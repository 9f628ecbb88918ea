namespace MailMesh.Ingress.Http;

/// <summary>Source-generated logs of the HTTP submission API; event ids are stable (1100-1149).</summary>
internal static partial class HttpApiLog
{
    [LoggerMessage(1100, LogLevel.Debug, "HTTP submission from {Client} presented an invalid API key")]
    public static partial void InvalidApiKey(ILogger logger, string client);

    [LoggerMessage(1101, LogLevel.Warning, "Policy check of recipient {Recipient} for API key {KeyName} failed; answering 503")]
    public static partial void PolicyUnavailable(ILogger logger, string recipient, string keyName, Exception exception);

    [LoggerMessage(1102, LogLevel.Debug, "HTTP submission by {KeyName}: Policy refused recipient {Recipient}: {Reply}")]
    public static partial void RecipientRefused(ILogger logger, string keyName, string recipient, string reply);

    [LoggerMessage(1103, LogLevel.Warning, "Idempotency lookup of message {MessageId} failed; answering 503")]
    public static partial void IdempotencyLookupFailed(ILogger logger, Guid messageId, Exception exception);

    [LoggerMessage(1104, LogLevel.Debug, "HTTP submission by {KeyName} replayed Idempotency-Key as message {MessageId}")]
    public static partial void Replayed(ILogger logger, string keyName, Guid messageId);

    [LoggerMessage(1105, LogLevel.Debug, "HTTP submission by {KeyName} reused Idempotency-Key of message {MessageId} with a different envelope")]
    public static partial void IdempotencyConflict(ILogger logger, string keyName, Guid messageId);

    [LoggerMessage(1106, LogLevel.Debug, "HTTP submission by {KeyName} refused with {Status}: {Detail}")]
    public static partial void Invalid(ILogger logger, string keyName, int status, string? detail);
}
