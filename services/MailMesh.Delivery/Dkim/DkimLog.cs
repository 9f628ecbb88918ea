namespace MailMesh.Delivery.Dkim;

internal static partial class DkimLog
{
    [LoggerMessage(EventId = 5030, Level = LogLevel.Information, Message = "DKIM key Dkim:Keys:{Index} ({Selector}._domainkey.{Domain}) re-read from {Path}")]
    public static partial void KeyReloaded(ILogger logger, int index, string domain, string selector, string path);

    [LoggerMessage(EventId = 5031, Level = LogLevel.Error, Message = "DKIM key Dkim:Keys:{Index} ({Selector}._domainkey.{Domain}): {Path} changed but cannot be loaded; still signing with the previous key")]
    public static partial void KeyReloadFailed(ILogger logger, Exception exception, int index, string domain, string selector, string path);
}
