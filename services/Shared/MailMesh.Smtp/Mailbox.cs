using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.Smtp;

/// <summary>
/// A parsed RFC 5321 §4.1.2 Mailbox: Local-part "@" ( Domain / address-literal ). The local part is kept exactly as
/// written (it is case-sensitive, §2.4); the domain is also available lower-cased for routing and policy.
/// </summary>
public sealed class Mailbox : IEquatable<Mailbox>
{
    /// <summary>RFC 5321 §4.5.3.1.1.</summary>
    public const int MaxLocalPartLength = 64;

    /// <summary>RFC 5321 §4.5.3.1.2.</summary>
    public const int MaxDomainLength = 255;

    /// <summary>RFC 5321 §4.5.3.1.3: the path including the angle brackets.</summary>
    public const int MaxPathLength = 256;

    internal Mailbox(string localPart, string domain, bool isAddressLiteral)
    {
        LocalPart = localPart;
        Domain = domain;
        // RFC 6531 §3.2 / RFC 5890: an internationalised domain is compared and routed in its A-label form.
        NormalizedDomain = !isAddressLiteral && !Ascii.IsValid(domain) && TryGetAsciiDomain(domain, out var ace)
            ? ace
            : domain.ToLowerInvariant();
        IsAddressLiteral = isAddressLiteral;
        IsInternational = !Ascii.IsValid(localPart) || !Ascii.IsValid(domain);
    }

    /// <summary>True when the local part or the domain holds non-ASCII (RFC 6531: needs SMTPUTF8).</summary>
    public bool IsInternational { get; }

    /// <summary>
    /// The A-label (ASCII-compatible) form of a domain, lower-cased (RFC 5890, through <see cref="NormalizedAddress"/>);
    /// false when the name is not a valid IDN.
    /// </summary>
    public static bool TryGetAsciiDomain(string domain, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? ascii)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ascii = null;
        return !domain.StartsWith('[') && NormalizedAddress.TryNormalizeDomain(domain, out ascii);
    }

    /// <summary>The local part as written: a dot-string, or a quoted-string including its quotes.</summary>
    public string LocalPart { get; }

    /// <summary>The domain (or address literal, with brackets) as written.</summary>
    public string Domain { get; }

    /// <summary>The domain lower-cased (domains are case-insensitive, RFC 5321 §2.4).</summary>
    public string NormalizedDomain { get; }

    /// <summary>True for "[192.0.2.1]" or "[IPv6:...]".</summary>
    public bool IsAddressLiteral { get; }

    /// <summary>local-part@normalised-domain: the form MailMesh stores and routes on.</summary>
    public string Address => LocalPart + "@" + NormalizedDomain;

    public override string ToString() => LocalPart + "@" + Domain;

    public bool Equals(Mailbox? other) =>
        other is not null && string.Equals(LocalPart, other.LocalPart, StringComparison.Ordinal)
        && string.Equals(NormalizedDomain, other.NormalizedDomain, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as Mailbox);

    public override int GetHashCode() => HashCode.Combine(StringComparer.Ordinal.GetHashCode(LocalPart), NormalizedDomain);

    /// <summary>Parses a bare mailbox ("user@example.com"), without angle brackets.</summary>
    public static bool TryParse(string text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Mailbox? mailbox)
    {
        ArgumentNullException.ThrowIfNull(text);
        mailbox = null;
        if (text.Length > MaxPathLength || !Ascii.IsValid(text))
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[text.Length];
        Encoding.ASCII.GetBytes(text, bytes);
        return MailboxParser.ParseMailbox(bytes, out mailbox) == PathError.None;
    }

    /// <summary>
    /// RFC 5321 §4.1.2 Domain: sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str], each label at most 63
    /// octets (RFC 1035 §2.3.4), at most 255 in all. A trailing dot is not allowed in SMTP.
    /// </summary>
    public static bool IsValidDomain(ReadOnlySpan<char> domain)
    {
        if (domain.IsEmpty || domain.Length > MaxDomainLength || !Ascii.IsValid(domain))
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[domain.Length];
        for (var i = 0; i < domain.Length; i++)
        {
            bytes[i] = (byte)domain[i];
        }

        return MailboxParser.IsValidDomain(bytes);
    }

    /// <summary>RFC 5321 §4.1.3 address-literal: "[" ( IPv4-address-literal / IPv6-address-literal ) "]".</summary>
    public static bool IsValidAddressLiteral(ReadOnlySpan<char> literal, out IPAddress? address)
    {
        address = null;
        if (literal.Length < 3 || literal[0] != '[' || literal[^1] != ']')
        {
            return false;
        }

        var inner = literal[1..^1];
        if (inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
        {
            var v6 = inner[5..];
            // IPAddress.TryParse accepts scope ids and brackets; the RFC grammar does not.
            foreach (var c in v6)
            {
                if (!(char.IsAsciiHexDigit(c) || c is ':' or '.'))
                {
                    return false;
                }
            }

            if (IPAddress.TryParse(v6, out var parsed) && parsed.AddressFamily == AddressFamily.InterNetworkV6)
            {
                address = parsed;
                return true;
            }

            return false;
        }

        // IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT representing 0-255.
        var octets = 0;
        foreach (var range in inner.Split('.'))
        {
            var part = inner[range];
            if (part.IsEmpty || part.Length > 3 || !part.ContainsOnlyDigits() || int.Parse(part, provider: System.Globalization.CultureInfo.InvariantCulture) > 255)
            {
                return false;
            }

            octets++;
        }

        if (octets != 4)
        {
            // General-address-literal (Standardized-tag ":" dcontent) has no registered tag besides IPv6.
            return false;
        }

        address = IPAddress.Parse(inner);
        return true;
    }
}

internal static class SpanExtensions
{
    public static bool ContainsOnlyDigits(this ReadOnlySpan<char> span)
    {
        foreach (var c in span)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }
}
