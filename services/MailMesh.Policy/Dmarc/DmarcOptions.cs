using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Dmarc;

/// <summary>What to do when the DMARC record or an input could not be had for now (RFC 7489 §6.6.3 temperror).</summary>
public enum DmarcTempErrorAction
{
    /// <summary>Accept and record dmarc=temperror (as OpenDMARC and rspamd do): a DNS blip never delays mail.</summary>
    Tag,

    /// <summary>Refuse with 451 4.7.1; the client retries later, when the policy can be known.</summary>
    Tempfail,
}

/// <summary>DMARC (section "Policy:Dmarc", RFC 7489) for mail from strangers (not relay clients, not authenticated).</summary>
public sealed class DmarcOptions : IValidatedOptions
{
    public static string SectionName => "Policy:Dmarc";

    /// <summary>Evaluate DMARC (and with it DKIM and SPF, its inputs). Default false: an internet-facing MX turns it on.</summary>
    public bool Enabled { get; set; }

    /// <summary>
    /// Apply the domain owner's policy: p=reject refuses with 550 5.7.1, p=quarantine delivers to the \Junk folder.
    /// False: only report dmarc= in Authentication-Results (monitoring). Default true.
    /// </summary>
    public bool Enforce { get; set; } = true;

    /// <summary>dmarc=temperror: <c>tag</c> (default, accept) or <c>tempfail</c> (451 4.7.1).</summary>
    public DmarcTempErrorAction TempErrorAction { get; set; } = DmarcTempErrorAction.Tag;

    /// <summary>The Public Suffix List file (organizational domains). Default: Debian's <c>publicsuffix</c> package.</summary>
    public string PublicSuffixList { get; set; } = "/usr/share/publicsuffix/public_suffix_list.dat";

    public IEnumerable<string> Validate()
    {
        if (!Enum.IsDefined(TempErrorAction))
        {
            yield return $"{SectionName}:{nameof(TempErrorAction)}: must be tag or tempfail";
        }

        if (Enabled && (string.IsNullOrWhiteSpace(PublicSuffixList) || !File.Exists(PublicSuffixList)))
        {
            yield return $"{SectionName}:{nameof(PublicSuffixList)}: '{PublicSuffixList}' does not exist (install Debian's publicsuffix package or name the file)";
        }
    }
}
