using System.Globalization;
using MailMesh.Policy.Dkim;

namespace MailMesh.Policy.Dmarc;

internal enum DmarcPolicy
{
    None,
    Quarantine,
    Reject,
}

/// <summary>A DMARC policy record (RFC 7489 §6.3): p, sp, adkim, aspf, pct; reporting tags are not used.</summary>
internal sealed record DmarcRecord(DmarcPolicy Policy, DmarcPolicy? SubdomainPolicy, bool StrictDkim, bool StrictSpf, int Percent)
{
    /// <summary>True when <paramref name="text"/> starts with the version tag (RFC 7489 §6.6.3: other TXT records are ignored).</summary>
    public static bool IsDmarc(string text) =>
        TagList.Parse(text) is [{ Key: "v", Value: "DMARC1" }, ..];

    /// <summary>The record, or null when it is not valid (no or bad p, a bad value of a known tag).</summary>
    public static DmarcRecord? Parse(string text)
    {
        if (TagList.Parse(text) is not { } tags || tags is not [{ Key: "v", Value: "DMARC1" }, ..])
        {
            return null;
        }

        if (PolicyOf(tags.Get("p")) is not { } policy)
        {
            return null;
        }

        DmarcPolicy? subdomain = null;
        if (tags.Get("sp") is { } sp)
        {
            subdomain = PolicyOf(sp);
            if (subdomain is null)
            {
                return null;
            }
        }

        if (!Alignment(tags.Get("adkim"), out var strictDkim) || !Alignment(tags.Get("aspf"), out var strictSpf))
        {
            return null;
        }

        var percent = 100;
        if (tags.Get("pct") is { } pct && (!int.TryParse(pct, NumberStyles.None, CultureInfo.InvariantCulture, out percent) || percent > 100))
        {
            return null;
        }

        return new DmarcRecord(policy, subdomain, strictDkim, strictSpf, percent);
    }

    private static DmarcPolicy? PolicyOf(string? text) => text?.ToLowerInvariant() switch
    {
        "none" => DmarcPolicy.None,
        "quarantine" => DmarcPolicy.Quarantine,
        "reject" => DmarcPolicy.Reject,
        _ => null,
    };

    private static bool Alignment(string? text, out bool strict)
    {
        strict = text is "s" or "S";
        return text is null or "r" or "s" or "R" or "S";
    }
}
