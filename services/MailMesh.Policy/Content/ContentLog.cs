namespace MailMesh.Policy.Content;

internal static partial class ContentLog
{
    [LoggerMessage(EventId = 2150, Level = LogLevel.Warning, Message = "Content check {Check} failed or ran out of time; the message is refused with 451 4.7.1")]
    public static partial void CheckFailed(ILogger logger, string check, Exception exception);
}
