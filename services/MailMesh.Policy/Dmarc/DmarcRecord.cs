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

    /// <summary>The record, or null when it is not valid (no or bad p or a bad sp without a valid rua, a bad value of a
    /// known tag).</summary>
    public static DmarcRecord? Parse(string text)
    {
        if (TagList.Parse(text) is not { } tags || tags is not [{ Key: "v", Value: "DMARC1" }, ..])
        {
            return null;
        }

        var policy = PolicyOf(tags.Get("p"));
        var subdomain = tags.Get("sp") is { } sp ? PolicyOf(sp) : null;
        if (policy is null || (tags.Get("sp") is not null && subdomain is null))
        {
            // RFC 7489 §6.6.3: no valid p= or an invalid sp=: with at least one valid rua= URI, act as if the record
            // were "v=DMARC1; p=none"; without, no DMARC processing.
            return HasValidReportUri(tags.Get("rua")) ? new DmarcRecord(DmarcPolicy.None, null, false, false, 100) : null;
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

        return new DmarcRecord(policy.Value, subdomain, strictDkim, strictSpf, percent);
    }

    /// <summary>RFC 7489 §6.2: rua= is a comma-separated list of URIs, each optionally followed by "!size".</summary>
    private static bool HasValidReportUri(string? rua) =>
        rua is not null && rua.Split(',').Any(entry =>
        {
            var text = entry.Trim();
            var bang = text.LastIndexOf('!');
            return Uri.TryCreate(bang > 0 ? text[..bang] : text, UriKind.Absolute, out var uri)
                && (uri.Scheme == Uri.UriSchemeMailto ? uri.UserInfo.Length > 0 && uri.Host.Length > 0 : uri.Host.Length > 0);
        });

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
