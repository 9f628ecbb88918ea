using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace MailMesh.Smtp;

/// <summary>
/// MailMesh's one address and domain normaliser: what decides relaying, routing, grouping and suppression everywhere
/// (Ingress, Policy, Storage, Dns, Delivery, the HTTP API). Like <see cref="System.Net.Mail.MailAddress"/>, but strict:
/// <list type="bullet">
/// <item>split at the LAST '@' (a quoted local part may hold '@', RFC 5321 §4.1.2);</item>
/// <item>the local part is a dot-string or quoted-string (RFC 5321 §4.1.2), UTF-8 allowed (RFC 6531 §3.3), kept as
/// written (it is case-sensitive, RFC 5321 §2.4) and compared case-insensitively only where policy says so
/// (<see cref="ComparisonKey"/>: suppression, relay);</item>
/// <item>the domain in lower-case A-labels (RFC 5890 §2.3.2.1) through one IDNA configuration
/// (<see cref="IdnMapping"/> with UseStd3AsciiRules, AllowUnassigned = false), then checked against the RFC 5321
/// §4.1.2 Domain grammar; "xn--" labels must be valid Punycode; no trailing dot (not allowed in SMTP);</item>
/// <item>or an address literal (RFC 5321 §4.1.3: "[192.0.2.1]", "[ipv6:2001:db8::1]") in one form per address
/// (IPv4 without leading zeros, an IPv4-mapped IPv6 address as IPv4, IPv6 as RFC 5952 text);</item>
/// <item>lengths from RFC 5321 §4.5.3.1: local part 64 octets (UTF-8), path 256 including the angle brackets; the
/// domain 255, and as a DNS name 253 as text (RFC 1035 §3.1, enforced by IDNA), labels 63.</item>
/// </list>
/// </summary>
public readonly struct NormalizedAddress : IEquatable<NormalizedAddress>
{
    /// <summary>The one IDNA configuration of MailMesh (RFC 5891, UTS #46 through ICU).</summary>
    private static readonly IdnMapping Idn = new() { UseStd3AsciiRules = true, AllowUnassigned = false };

    private NormalizedAddress(string localPart, string domain, bool isAddressLiteral)
    {
        LocalPart = localPart;
        Domain = domain;
        IsAddressLiteral = isAddressLiteral;
    }

    /// <summary>The local part as written: a dot-string, or a quoted-string with its quotes.</summary>
    public string LocalPart { get; }

    /// <summary>The domain in lower-case A-labels, or the address literal (with brackets) in its one form.</summary>
    public string Domain { get; }

    /// <summary>True for "[192.0.2.1]" or "[IPv6:...]".</summary>
    public bool IsAddressLiteral { get; }

    /// <summary>True when the local part holds non-ASCII (RFC 6531: the address needs SMTPUTF8).</summary>
    public bool IsInternational => LocalPart is not null && !Ascii.IsValid(LocalPart);

    /// <summary>local-part@domain with the normalised domain: the form MailMesh stores, routes and sends.</summary>
    public string Address => LocalPart + "@" + Domain;

    /// <summary>
    /// The address with the local part lower-cased too: the key where policy compares addresses case-insensitively
    /// (suppression, relay). Never sent anywhere: RFC 5321 §2.4 lets the receiving host decide local part case.
    /// One mailbox has one key however its local part is written: a quoted-string is compared by its content
    /// (quotes and quoted-pairs are not part of it, RFC 5322 §3.2.4), unquoted when that content is a dot-string
    /// (<c>"alice"@x</c> and <c>"al\ice"@x</c> are <c>alice@x</c>). Not NFC-normalised: the services run with
    /// InvariantGlobalization, where string.Normalize does nothing.
    /// </summary>
    public string ComparisonKey => CanonicalLocalPart(LocalPart).ToLowerInvariant() + "@" + Domain;

    public override string ToString() => Address;

    public bool Equals(NormalizedAddress other) =>
        string.Equals(LocalPart, other.LocalPart, StringComparison.Ordinal) && string.Equals(Domain, other.Domain, StringComparison.Ordinal);

    public override bool Equals(object? obj) => obj is NormalizedAddress other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(
        LocalPart is null ? 0 : StringComparer.Ordinal.GetHashCode(LocalPart),
        Domain is null ? 0 : StringComparer.Ordinal.GetHashCode(Domain));

    public static bool operator ==(NormalizedAddress left, NormalizedAddress right) => left.Equals(right);

    public static bool operator !=(NormalizedAddress left, NormalizedAddress right) => !left.Equals(right);

    /// <summary>Parses a bare address ("user@example.com", no angle brackets); false when it is not a valid one.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out NormalizedAddress address)
    {
        address = default;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        var at = text.LastIndexOf('@');
        if (at <= 0 || at == text.Length - 1)
        {
            return false;
        }

        var local = text[..at];
        if (Encoding.UTF8.GetByteCount(local) > Mailbox.MaxLocalPartLength || !IsValidLocalPart(local)
            || !TryNormalizeDomain(text[(at + 1)..], out var domain, out var literal))
        {
            return false;
        }

        // RFC 5321 §4.5.3.1.3: the path "<" local "@" domain ">" is at most 256 octets.
        if (Encoding.UTF8.GetByteCount(local) + 1 + domain.Length + 2 > Mailbox.MaxPathLength)
        {
            return false;
        }

        address = new NormalizedAddress(local, domain, literal);
        return true;
    }

    /// <summary>Parses a bare address; <see cref="FormatException"/> when it is not a valid one.</summary>
    public static NormalizedAddress Parse(string text) =>
        TryParse(text, out var address) ? address : throw new FormatException($"'{text}' is not a valid address (RFC 5321 §4.1.2).");

    /// <summary>
    /// A domain (U-labels, A-labels or mixed, any case) or address literal in its normalised form: lower-case A-labels
    /// or the literal lower-cased; false when it is neither a valid domain nor a valid literal.
    /// </summary>
    public static bool TryNormalizeDomain([NotNullWhen(true)] string? domain, [NotNullWhen(true)] out string? normalized) =>
        TryNormalizeDomain(domain, out normalized, out _);

    /// <summary>As <see cref="TryNormalizeDomain(string?, out string?)"/>; <see cref="ArgumentException"/> when invalid.</summary>
    public static string NormalizeDomain(string domain) =>
        TryNormalizeDomain(domain, out var normalized)
            ? normalized
            : throw new ArgumentException($"'{domain}' is not a valid domain (RFC 5321 §4.1.2, RFC 5890).", nameof(domain));

    /// <summary>
    /// An addr-spec with a non-ASCII domain converted to its A-labels (<see cref="NormalizeDomain"/>), the local part
    /// untouched; an ASCII domain is left as written for the caller's own checks. <see cref="ArgumentException"/> when
    /// the non-ASCII domain is not a valid IDN.
    /// </summary>
    public static string WithAsciiDomain(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var at = address.LastIndexOf('@');
        return at < 0 || Ascii.IsValid(address.AsSpan(at + 1))
            ? address
            : string.Concat(address.AsSpan(0, at + 1), NormalizeDomain(address[(at + 1)..]));
    }

    private static bool TryNormalizeDomain([NotNullWhen(true)] string? domain, [NotNullWhen(true)] out string? normalized, out bool literal)
    {
        normalized = null;
        literal = false;
        if (string.IsNullOrEmpty(domain))
        {
            return false;
        }

        if (domain[0] == '[')
        {
            if (!Ascii.IsValid(domain) || !Mailbox.IsValidAddressLiteral(domain, out var ip) || ip is null)
            {
                return false;
            }

            // One host, one literal: "[192.000.002.001]", "[IPv6:::ffff:192.0.2.1]" and "[192.0.2.1]" are the same
            // destination, and an IPv6 address has one text form (RFC 5952 §4, what IPAddress prints).
            normalized = ip.IsIPv4MappedToIPv6 ? "[" + ip.MapToIPv4() + "]"
                : ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "[ipv6:" + ip + "]"
                : "[" + ip + "]";
            literal = true;
            return true;
        }

        if (domain.Length > 4 * Mailbox.MaxDomainLength)
        {
            return false;
        }

        string ascii;
        try
        {
            var mapped = MapFullwidth(domain);

            // RFC 5321 has no trailing dot; IDNA would silently accept one (and an empty label).
            if (mapped[^1] == '.')
            {
                return false;
            }

            // Case-fold first: IDNA lookups are case-insensitive (RFC 5891 §5.2 mapping, UTS #46).
            ascii = Idn.GetAscii(mapped.ToLowerInvariant()).ToLowerInvariant();
            // An A-label must be the encoding of a valid U-label (RFC 5891 §5.4): decode it and encode it again.
            if (ascii.Contains("xn--", StringComparison.Ordinal)
                && !string.Equals(Idn.GetAscii(Idn.GetUnicode(ascii)), ascii, StringComparison.Ordinal))
            {
                return false;
            }
        }
        catch (ArgumentException)
        {
            return false;
        }

        if (!Mailbox.IsValidDomain(ascii))
        {
            return false;
        }

        normalized = ascii;
        return true;
    }

    /// <summary>RFC 5321 §4.1.2 Local-part = Dot-string / Quoted-string, with RFC 6531 §3.3's UTF8-non-ascii.</summary>
    private static bool IsValidLocalPart(string local)
    {
        if (local.Length == 0)
        {
            return false;
        }

        if (local[0] == '"')
        {
            // Quoted-string = DQUOTE *QcontentSMTP DQUOTE; qtextSMTP = %d32-33 / %d35-91 / %d93-126 / UTF8-non-ascii;
            // quoted-pairSMTP = "\" %d32-126.
            if (local.Length < 2 || local[^1] != '"')
            {
                return false;
            }

            for (var i = 1; i < local.Length - 1; i++)
            {
                var c = local[i];
                if (c == '\\')
                {
                    i++;
                    if (i >= local.Length - 1 || local[i] is < ' ' or > '~')
                    {
                        return false;
                    }
                }
                else if (c == '"' || c < ' ' || c == '\u007f' || char.IsControl(c))
                {
                    return false;
                }
            }

            return true;
        }

        return IsDotString(local);
    }

    /// <summary>Dot-string = Atom *("." Atom): no leading, trailing or doubled dot (RFC 5321 §4.1.2).</summary>
    private static bool IsDotString(ReadOnlySpan<char> local)
    {
        var atomLength = 0;
        foreach (var c in local)
        {
            if (c == '.')
            {
                if (atomLength == 0)
                {
                    return false;
                }

                atomLength = 0;
            }
            else if (IsAtext(c))
            {
                atomLength++;
            }
            else
            {
                return false;
            }
        }

        return atomLength > 0;
    }

    /// <summary>
    /// UTS #46 §4 maps fullwidth ASCII forms (U+FF01-U+FF5E) to ASCII and the ideographic full stops to '.' before
    /// IDNA, so "ｅxample．com" is example.com and "example＠com" is refused, rather than encoded into an A-label of
    /// code points IDNA2008 disallows (RFC 5892). The services run with InvariantGlobalization, where IdnMapping is
    /// the managed Punycode encoder without the UTS #46 mapping table and string.Normalize does nothing, so the
    /// mapping that matters for look-alike spellings of ASCII names is done here.
    /// </summary>
    private static string MapFullwidth(string domain)
    {
        if (Ascii.IsValid(domain))
        {
            return domain;
        }

        return string.Create(domain.Length, domain, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                var c = source[i];
                span[i] = c switch
                {
                    >= '\uFF01' and <= '\uFF5E' => (char)(c - 0xFEE0),
                    '\u3002' or '\uFF61' => '.',
                    _ => c,
                };
            }
        });
    }

    /// <summary>The local part as <see cref="ComparisonKey"/> compares it (before lower-casing).</summary>
    private static string CanonicalLocalPart(string local)
    {
        if (local.Length < 2 || local[0] != '"')
        {
            return local;
        }

        // Validated by IsValidLocalPart: a backslash is always followed by the character it quotes.
        var content = new StringBuilder(local.Length);
        for (var i = 1; i < local.Length - 1; i++)
        {
            content.Append(local[i] == '\\' ? local[++i] : local[i]);
        }

        var text = content.ToString();
        if (text.Length > 0 && IsDotString(text))
        {
            return text;
        }

        // Needs quoting: quote only what must be (RFC 5321 §4.1.2 qtextSMTP excludes '"' and '\\').
        var quoted = new StringBuilder(text.Length + 4).Append('"');
        foreach (var c in text)
        {
            if (c is '"' or '\\')
            {
                quoted.Append('\\');
            }

            quoted.Append(c);
        }

        return quoted.Append('"').ToString();
    }

    // RFC 5322 §3.2.3 atext, plus UTF8-non-ascii (RFC 6531 §3.3) other than controls and white space.
    private static bool IsAtext(char c) =>
        char.IsAsciiLetterOrDigit(c)
        || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '/' or '=' or '?' or '^' or '_' or '`' or '{' or '|' or '}' or '~'
        || (c > '\u007f' && !char.IsControl(c) && !char.IsWhiteSpace(c));
}
