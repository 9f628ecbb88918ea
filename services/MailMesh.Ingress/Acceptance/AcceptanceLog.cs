namespace MailMesh.Ingress.Acceptance;

internal static partial class AcceptanceLog
{
    [LoggerMessage(1090, LogLevel.Warning, "Message {MessageId}: its content could not be checked (Policy:Content); answering 451")]
    public static partial void ContentCheckFailed(ILogger logger, Guid messageId, Exception exception);
}
