using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Scanning;

/// <summary>
/// Spam scanning with rspamd's HTTP protocol (<c>POST /checkv2</c>) at the end of DATA (section "Policy:Rspamd").
/// Defaults: Timeout 15 s, MaxSize 20 MiB (as rspamd's own max_message), ScanSubmitters false (inbound only).
/// </summary>
public sealed class RspamdOptions() : ScannerOptions(TimeSpan.FromSeconds(15), 20 * 1024 * 1024, scanSubmitters: false), IValidatedOptions
{
    public static string SectionName => "Policy:Rspamd";

    /// <summary>rspamd's normal worker (or proxy in self-scan mode), http only. Default <c>http://127.0.0.1:11333/</c>.</summary>
    public string Url { get; set; } = "http://127.0.0.1:11333/";

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

    /// <summary>The parsed <see cref="Url"/>.</summary>
    internal Uri BaseUri => new(Url.EndsWith('/') ? Url : Url + "/", UriKind.Absolute);

    public IEnumerable<string> Validate()
    {
        if (!Uri.TryCreate(Url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp || !string.IsNullOrEmpty(uri.Query))
        {
            yield return $"{SectionName}:{nameof(Url)}: '{Url}' must be an absolute http:// URL (rspamd's normal worker, e.g. http://127.0.0.1:11333/)";
        }

        foreach (var error in ValidateCommon(SectionName))
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
