namespace MailMesh.Admin.Components;

/// <summary>What UI accounts did: the admin API's audit trail names the UI's key, these lines name the person.</summary>
internal static partial class AdminUiLog
{
    [LoggerMessage(3410, LogLevel.Information, "Admin UI: {User} applied {Action} to {Target}: {Changed} changed, {Skipped} in flight left alone (audit {AuditId})")]
    public static partial void ActionApplied(ILogger logger, string user, string action, string target, int changed, int skipped, long auditId);

    [LoggerMessage(3411, LogLevel.Information, "Admin UI: {User} suppressed {Address}")]
    public static partial void Suppressed(ILogger logger, string user, string address);

    [LoggerMessage(3412, LogLevel.Information, "Admin UI: {User} removed the suppression of {Address}")]
    public static partial void Unsuppressed(ILogger logger, string user, string address);

    [LoggerMessage(3413, LogLevel.Warning, "Admin UI: {User} ({Role}) was refused {Action}: the role does not allow it")]
    public static partial void Refused(ILogger logger, string user, string role, string action);

    [LoggerMessage(3414, LogLevel.Information, "Admin UI: {User} did {Action} on SMTP user {Name}")]
    public static partial void SmtpUserChanged(ILogger logger, string user, string action, string name);

    [LoggerMessage(3415, LogLevel.Information, "Admin UI: {User} did {Action} on the {Kind} key {Name}")]
    public static partial void KeyChanged(ILogger logger, string user, string action, string kind, string name);

    // 3430-3439: the pages of session 10's "ui" helper (site suspensions).
    [LoggerMessage(3430, LogLevel.Information, "Admin UI: {User} suspended site {Site} from {SourceIp} until {Until}")]
    public static partial void SiteSuspended(ILogger logger, string user, string site, string sourceIp, DateTimeOffset until);

    [LoggerMessage(3431, LogLevel.Information, "Admin UI: {User} lifted the shaping action on site {Site}")]
    public static partial void SiteLifted(ILogger logger, string user, string site);

    // 3440-3449: session 11's "adminui" helper (webhook edit and delete, SMTP password reset).
    [LoggerMessage(3440, LogLevel.Information, "Admin UI: {User} did {Action} on the webhook endpoint {Id} ({Url})")]
    public static partial void WebhookChanged(ILogger logger, string user, string action, Guid id, string url);
}
