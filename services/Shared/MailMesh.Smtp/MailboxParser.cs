using System.Text;
using System.Text.Unicode;

namespace MailMesh.Smtp;

/// <summary>Why a path did not parse.</summary>
public enum PathError
{
    None,

    /// <summary>Not RFC 5321 §4.1.2 syntax.</summary>
    Syntax,

    /// <summary>A-d-l source route ("&lt;@a,@b:user@c&gt;"): §4.1.1.3 says a server MAY accept and ignore it; MailMesh refuses it.</summary>
    SourceRoute,

    /// <summary>Local part over 64, domain over 255 or path over 256 octets (§4.5.3.1).</summary>
    TooLong,

    /// <summary>"&lt;&gt;" where a mailbox is required (RCPT).</summary>
    NullPath,
}

/// <summary>RFC 5321 §4.1.2 Path / Mailbox parsing over ASCII octets, allocation-free until success.</summary>
public static class MailboxParser
{
    /// <summary>
    /// Parses a Reverse-path or Forward-path at the start of <paramref name="input"/>: "&lt;" [ A-d-l ":" ] Mailbox "&gt;",
    /// "&lt;&gt;" (the null reverse path, when <paramref name="allowNull"/>), or "&lt;Postmaster&gt;" (§4.1.1.3, reported by
    /// <paramref name="isPostmaster"/> with a null mailbox). <paramref name="consumed"/> is the length of the path.
    /// </summary>
    public static PathError ParsePath(ReadOnlySpan<byte> input, bool allowNull, out Mailbox? mailbox, out int consumed, out bool isPostmaster) =>
        ParsePath(input, allowNull, allowUtf8: false, out mailbox, out consumed, out isPostmaster);

    /// <summary>
    /// As <see cref="ParsePath(ReadOnlySpan{byte}, bool, out Mailbox?, out int, out bool)"/>; with
    /// <paramref name="allowUtf8"/> (RFC 6531 §3.3, SMTPUTF8) the local part may hold UTF-8 and the domain U-labels.
    /// </summary>
    public static PathError ParsePath(ReadOnlySpan<byte> input, bool allowNull, bool allowUtf8, out Mailbox? mailbox, out int consumed, out bool isPostmaster)
    {
        mailbox = null;
        consumed = 0;
        isPostmaster = false;
        if (input.IsEmpty || input[0] != '<')
        {
            return PathError.Syntax;
        }

        // Find the closing '>' outside a quoted local part ("a>b"@example.com is a valid mailbox).
        var end = -1;
        var quoted = false;
        for (var i = 1; i < input.Length; i++)
        {
            var c = input[i];
            if (quoted)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == '>')
            {
                end = i;
                break;
            }
        }

        if (end < 0)
        {
            return PathError.Syntax;
        }

        consumed = end + 1;
        if (consumed > Mailbox.MaxPathLength)
        {
            return PathError.TooLong;
        }

        var inner = input[1..end];
        if (inner.IsEmpty)
        {
            return allowNull ? PathError.None : PathError.NullPath;
        }

        if (inner[0] == '@')
        {
            // RFC 5321 §4.1.2 A-d-l = At-domain *( "," At-domain ), then ":" Mailbox. Recognised only to be refused:
            // honouring source routes would make MailMesh an open relay for whoever writes them.
            return inner.IndexOf((byte)':') > 1 ? PathError.SourceRoute : PathError.Syntax;
        }

        if (Ascii.EqualsIgnoreCase(inner, "postmaster"u8))
        {
            isPostmaster = true;
            return PathError.None;
        }

        return ParseMailbox(inner, allowUtf8, out mailbox);
    }

    /// <summary>Parses Mailbox = Local-part "@" ( Domain / address-literal ), the whole of <paramref name="input"/>.</summary>
    public static PathError ParseMailbox(ReadOnlySpan<byte> input, out Mailbox? mailbox) => ParseMailbox(input, allowUtf8: false, out mailbox);

    /// <summary>Parses local-part "@" domain; <paramref name="allowUtf8"/> admits RFC 6531 §3.3 UTF-8 addresses.</summary>
    public static PathError ParseMailbox(ReadOnlySpan<byte> input, bool allowUtf8, out Mailbox? mailbox)
    {
        mailbox = null;
        if (allowUtf8 && !Ascii.IsValid(input))
        {
            return ParseInternationalMailbox(input, out mailbox);
        }

        var at = LocalPartLength(input, allowUtf8: false);
        if (at <= 0 || at >= input.Length || input[at] != '@')
        {
            return PathError.Syntax;
        }

        var domain = input[(at + 1)..];
        bool literal;
        if (!domain.IsEmpty && domain[0] == '[')
        {
            Span<char> chars = stackalloc char[domain.Length];
            Encoding.ASCII.GetChars(domain, chars);
            if (!Mailbox.IsValidAddressLiteral(chars, out _))
            {
                return PathError.Syntax;
            }

            literal = true;
        }
        else if (!IsValidDomain(domain))
        {
            return domain.Length > Mailbox.MaxDomainLength ? PathError.TooLong : PathError.Syntax;
        }
        else
        {
            literal = false;
        }

        // RFC 5321 §4.5.3.1.1 / §4.5.3.1.2 size limits.
        if (at > Mailbox.MaxLocalPartLength || domain.Length > Mailbox.MaxDomainLength)
        {
            return PathError.TooLong;
        }

        mailbox = new Mailbox(Encoding.ASCII.GetString(input[..at]), Encoding.ASCII.GetString(domain), literal);
        return PathError.None;
    }

    /// <summary>RFC 5321 §4.1.2 Domain over ASCII octets; see <see cref="Mailbox.IsValidDomain"/>.</summary>
    public static bool IsValidDomain(ReadOnlySpan<byte> domain)
    {
        if (domain.IsEmpty || domain.Length > Mailbox.MaxDomainLength)
        {
            return false;
        }

        var labelStart = 0;
        for (var i = 0; i <= domain.Length; i++)
        {
            if (i == domain.Length || domain[i] == '.')
            {
                var label = domain[labelStart..i];
                // sub-domain = Let-dig [Ldh-str]: starts and ends with a letter or digit, '-' only inside.
                if (label.IsEmpty || label.Length > 63 || !IsLetDig(label[0]) || !IsLetDig(label[^1]))
                {
                    return false;
                }

                labelStart = i + 1;
            }
            else if (!IsLetDig(domain[i]) && domain[i] != '-')
            {
                return false;
            }
        }

        return true;
    }

    // RFC 6531 §3.3: atext =/ UTF8-non-ascii, qtextSMTP =/ UTF8-non-ascii, sub-domain =/ U-label. The domain is
    // validated and converted with IDNA (IdnMapping, UseStd3AsciiRules), so policy and routing see its A-label.
    private static PathError ParseInternationalMailbox(ReadOnlySpan<byte> input, out Mailbox? mailbox)
    {
        mailbox = null;
        if (!Utf8.IsValid(input))
        {
            return PathError.Syntax;
        }

        var at = LocalPartLength(input, allowUtf8: true);
        if (at <= 0 || at >= input.Length || input[at] != '@')
        {
            return PathError.Syntax;
        }

        var domainBytes = input[(at + 1)..];
        if (at > Mailbox.MaxLocalPartLength || domainBytes.Length > Mailbox.MaxDomainLength)
        {
            return PathError.TooLong;
        }

        var local = Encoding.UTF8.GetString(input[..at]);
        var domain = Encoding.UTF8.GetString(domainBytes);
        if (domain.Length == 0 || domain[0] == '[' || domain[^1] == '.')
        {
            return domain.StartsWith('[') && Ascii.IsValid(domain) && Mailbox.IsValidAddressLiteral(domain, out _)
                ? Finish(local, domain, literal: true, out mailbox)
                : PathError.Syntax;
        }

        if (!Mailbox.TryGetAsciiDomain(domain, out _))
        {
            return PathError.Syntax;
        }

        return Finish(local, domain, literal: false, out mailbox);

        static PathError Finish(string local, string domain, bool literal, out Mailbox? mailbox)
        {
            mailbox = new Mailbox(local, domain, literal);
            return PathError.None;
        }
    }

    // Returns the length of the Local-part at the start of input (dot-string or quoted-string), or -1.
    private static int LocalPartLength(ReadOnlySpan<byte> input, bool allowUtf8)
    {
        if (input.IsEmpty)
        {
            return -1;
        }

        if (input[0] == '"')
        {
            // Quoted-string = DQUOTE *QcontentSMTP DQUOTE; qtextSMTP = %d32-33 / %d35-91 / %d93-126;
            // quoted-pairSMTP = %d92 %d32-126.
            for (var i = 1; i < input.Length; i++)
            {
                var c = input[i];
                if (c == '"')
                {
                    return i + 1;
                }

                if (c == '\\')
                {
                    if (++i >= input.Length || input[i] < 32 || (input[i] > 126 && !allowUtf8))
                    {
                        return -1;
                    }
                }
                else if (c < 32 || (c > 126 && !allowUtf8))
                {
                    return -1;
                }
            }

            return -1;
        }

        // Dot-string = Atom *("." Atom); Atom = 1*atext.
        var previousDot = true;
        for (var i = 0; i < input.Length; i++)
        {
            var c = input[i];
            if (c == '@')
            {
                return previousDot ? -1 : i;
            }

            if (c == '.')
            {
                if (previousDot)
                {
                    return -1;
                }

                previousDot = true;
            }
            else if (IsAtext(c) || (allowUtf8 && c >= 0x80))
            {
                previousDot = false;
            }
            else
            {
                return -1;
            }
        }

        return -1;
    }

    private static bool IsLetDig(byte c) => char.IsAsciiLetterOrDigit((char)c);

    // RFC 5322 §3.2.3 atext.
    private static bool IsAtext(byte c) => char.IsAsciiLetterOrDigit((char)c) || c switch
    {
        (byte)'!' or (byte)'#' or (byte)'$' or (byte)'%' or (byte)'&' or (byte)'\'' or (byte)'*' or (byte)'+' or (byte)'-'
            or (byte)'/' or (byte)'=' or (byte)'?' or (byte)'^' or (byte)'_' or (byte)'`' or (byte)'{' or (byte)'|'
            or (byte)'}' or (byte)'~' => true,
        _ => false,
    };
}
