using MailMesh.Smtp;

namespace MailMesh.Policy;

/// <summary>
/// A recipient address split for policy decisions. Only what policy needs: the domain that decides relaying and the
/// local part that must not smuggle a second routing step past the relay check.
/// </summary>
internal readonly record struct MailboxParts(string LocalPart, string Domain, bool HadSourceRoute)
{
    /// <summary>The address for lookups: local part and domain, lower-cased.</summary>
    public string Normalized => (LocalPart + "@" + Domain).ToLowerInvariant();

    /// <summary>
    /// True when the local part could make a downstream MTA route the message on to another host: the "percent hack"
    /// (<c>user%other.example@relay</c>), a UUCP bang path (<c>other.example!user@relay</c>) or a quoted second
    /// address (<c>"user@other.example"@relay</c>). Postfix refuses these from untrusted clients for the same reason
    /// (<c>allow_untrusted_routing = no</c>).
    /// </summary>
    public bool HasRoutingCharacters => LocalPart.AsSpan().IndexOfAny('%', '!', '@') >= 0;

    /// <summary>
    /// Splits an RFC 5321 forward-path. Angle brackets are optional. A source route (<c>@a,@b:user@c</c>,
    /// RFC 5321 §4.1.2 A-d-l) is dropped, as RFC 5321 §3.6.1 and Appendix C tell servers to do, and reported in
    /// <see cref="MailboxParts.HadSourceRoute"/>. The domain is the text after the LAST '@' (a quoted local part may
    /// contain '@'), with one trailing '.' removed, normalised by <see cref="NormalizedAddress"/> (lower-case A-labels).
    /// </summary>
    public static bool TryParse(string? address, out MailboxParts parts)
    {
        parts = default;
        var span = (address ?? string.Empty).AsSpan().Trim();
        if (span.Length >= 2 && span[0] == '<' && span[^1] == '>')
        {
            span = span[1..^1];
        }

        var sourceRoute = false;
        if (span.Length > 0 && span[0] == '@')
        {
            var colon = span.IndexOf(':');
            if (colon < 0)
            {
                return false;
            }

            span = span[(colon + 1)..];
            sourceRoute = true;
        }

        var at = span.LastIndexOf('@');
        if (at <= 0 || at == span.Length - 1)
        {
            return false;
        }

        var local = span[..at];
        var domain = span[(at + 1)..];
        if (domain[^1] == '.')
        {
            domain = domain[..^1];
        }

        // RFC 5321 §4.5.3.1: local part at most 64 octets, domain at most 255; no whitespace or controls anywhere.
        if (domain.Length == 0 || local.Length > 64 || domain.Length > 255 || ContainsSpaceOrControl(local) || ContainsSpaceOrControl(domain)
            || domain.IndexOfAny('@', '"', '\\') >= 0 || !NormalizedAddress.TryNormalizeDomain(domain.ToString(), out var normalizedDomain))
        {
            return false;
        }

        parts = new MailboxParts(local.ToString(), normalizedDomain, sourceRoute);
        return true;
    }

    private static bool ContainsSpaceOrControl(ReadOnlySpan<char> value)
    {
        foreach (var c in value)
        {
            if (c <= ' ' || c == '\u007f')
            {
                return true;
            }
        }

        return false;
    }
}
