using System.Globalization;
using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Scanning;

/// <summary>Spam scanning with rspamd's HTTP protocol (<c>POST /checkv2</c>) at the end of DATA (section "Policy:Rspamd").</summary>
public sealed class RspamdOptions : IValidatedOptions
{
    public static string SectionName => "Policy:Rspamd";

    /// <summary>Scan inbound mail with rspamd. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary>rspamd's normal worker (or proxy in self-scan mode), http only. Default <c>http://127.0.0.1:11333/</c>.</summary>
    public string Url { get; set; } = "http://127.0.0.1:11333/";

    /// <summary>Bound on one scan (connect, send, verdict); past it the scanner counts as unavailable.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Messages larger than this are not scanned (accepted and logged, as rspamd's own max_message does).</summary>
    public long MaxSize { get; set; } = 20 * 1024 * 1024;

    /// <summary>Also scan mail from submitters (relay networks, authenticated clients). Default false: inbound only.</summary>
    public bool ScanSubmitters { get; set; }

    /// <summary>rspamd action "reject". Default <c>Reject</c> (550 5.7.1).</summary>
    public ScanAction RejectAction { get; set; } = ScanAction.Reject;

    /// <summary>rspamd action "soft reject" (rate limits, a failed check of its own). Default <c>TempFail</c> (451 4.7.1).</summary>
    public ScanAction SoftRejectAction { get; set; } = ScanAction.TempFail;

    /// <summary>rspamd action "rewrite subject". Default <c>Tag</c> (MailMesh adds headers; it does not rewrite the subject).</summary>
    public ScanAction RewriteSubjectAction { get; set; } = ScanAction.Tag;

    /// <summary>rspamd action "add header". Default <c>Tag</c>; <c>Junk</c> files it in \Junk.</summary>
    public ScanAction AddHeaderAction { get; set; } = ScanAction.Tag;

    /// <summary>
    /// rspamd action "greylist": the score passed rspamd's greylist threshold (4 in Debian) and nothing greylisted it.
    /// rspamd's greylist module (it needs redis) answers "soft reject" for a message it greylists and turns "greylist"
    /// into "no action" once the client retried, so "greylist" reaches MailMesh only without that module; a 451 then
    /// would never end. Default <c>Accept</c>; <c>TempFail</c> (451 4.7.1) or <c>Tag</c> per configuration.
    /// </summary>
    public ScanAction GreylistAction { get; set; } = ScanAction.Accept;

    /// <summary>rspamd down, timed out or answering nonsense: <c>TempFail</c> (default, 451 4.7.1), <c>Reject</c> or
    /// <c>Tag</c> (accept with X-Spam-Status: Unknown); never a silent accept.</summary>
    public ScanAction UnavailableAction { get; set; } = ScanAction.TempFail;

    /// <summary>The parsed <see cref="Url"/>.</summary>
    internal Uri BaseUri => new(Url.EndsWith('/') ? Url : Url + "/", UriKind.Absolute);

    public IEnumerable<string> Validate()
    {
        if (!Uri.TryCreate(Url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp || !string.IsNullOrEmpty(uri.Query))
        {
            yield return $"{SectionName}:{nameof(Url)}: '{Url}' must be an absolute http:// URL (rspamd's normal worker, e.g. http://127.0.0.1:11333/)";
        }

        foreach (var error in ScanOptionRules.Common(SectionName, Timeout, MaxSize, UnavailableAction))
        {
            yield return error;
        }

        foreach (var (name, action) in new[]
        {
            (nameof(RejectAction), RejectAction), (nameof(SoftRejectAction), SoftRejectAction),
            (nameof(RewriteSubjectAction), RewriteSubjectAction), (nameof(AddHeaderAction), AddHeaderAction),
            (nameof(GreylistAction), GreylistAction),
        })
        {
            if (!Enum.IsDefined(action))
            {
                yield return $"{SectionName}:{name}: must be accept, tag, junk, tempfail or reject";
            }
        }
    }
}

/// <summary>Validation shared by the scanners' options.</summary>
internal static class ScanOptionRules
{
    public static IEnumerable<string> Common(string section, TimeSpan timeout, long maxSize, ScanAction unavailable)
    {
        if (timeout <= TimeSpan.Zero || timeout > TimeSpan.FromMinutes(5))
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{section}:Timeout: must be positive and at most 5 minutes (was {timeout})");
        }

        if (maxSize < 1)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{section}:MaxSize: must be at least 1 byte (was {maxSize})");
        }

        if (unavailable is not (ScanAction.TempFail or ScanAction.Reject or ScanAction.Tag))
        {
            yield return $"{section}:UnavailableAction: must be tempfail, reject or tag (an unscanned message is never accepted silently)";
        }
    }
}
