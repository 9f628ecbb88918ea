using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace MailMesh.Smtp;

/// <summary>RFC 6152 / RFC 3030 BODY parameter values.</summary>
public enum SmtpBodyType
{
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// <summary>
/// The MAIL FROM parameters MailMesh understands: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), RET and ENVID
/// (RFC 3461), AUTH (RFC 4954 §5), SMTPUTF8 (RFC 6531) and REQUIRETLS (RFC 8689). Whether each may be used in the
/// session (advertised, TLS active...) is the server's decision.
/// </summary>
public sealed class MailParameters
{
    public static MailParameters None { get; } = new();

    /// <summary>The declared message size, or null when not given.</summary>
    public long? Size { get; private init; }

    public SmtpBodyType Body { get; private init; } = SmtpBodyType.SevenBit;

    /// <summary>RFC 3461 §4.3 RET: "FULL" or "HDRS" (upper case), or null.</summary>
    public string? Ret { get; private init; }

    /// <summary>RFC 3461 §4.4 ENVID, decoded from xtext, or null.</summary>
    public string? EnvelopeId { get; private init; }

    /// <summary>RFC 4954 §5 AUTH=: the decoded authorization identity ("&lt;&gt;" for none), or null when absent.</summary>
    public string? Auth { get; private init; }

    /// <summary>RFC 6531 §3.4: the SMTPUTF8 parameter was given.</summary>
    public bool SmtpUtf8 { get; private init; }

    /// <summary>RFC 8689 §3: the REQUIRETLS parameter was given.</summary>
    public bool RequireTls { get; private init; }

    /// <summary>RFC 3461 §4.4: ENVID is at most 100 characters.</summary>
    public const int MaxEnvelopeIdLength = 100;

    /// <summary>
    /// Interprets MAIL parameters. Unknown keywords are refused with 555 5.5.4 (RFC 5321 §4.1.1.11: parameters that
    /// were not advertised), malformed values with 501 5.5.4.
    /// </summary>
    public static bool TryParse(IReadOnlyList<EsmtpParameter> parameters, [NotNullWhen(true)] out MailParameters? result, [NotNullWhen(false)] out SmtpReply? error)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        result = null;
        error = null;
        if (parameters.Count == 0)
        {
            result = None;
            return true;
        }

        long? size = null;
        SmtpBodyType? body = null;
        string? ret = null, envelopeId = null, auth = null;
        bool smtpUtf8 = false, requireTls = false;
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (keyword, value) in parameters)
        {
            if (!seen.Add(keyword))
            {
                // RFC 5321 §4.1.2 does not allow a parameter twice; RFC 3461 §4.1 says so for its own.
                error = SmtpReplies.DuplicateParameter;
                return false;
            }

            if (keyword.Equals("RET", StringComparison.OrdinalIgnoreCase))
            {
                // RFC 3461 §4.3: ret-value = "FULL" / "HDRS".
                ret = value?.ToUpperInvariant() is "FULL" or "HDRS" ? value.ToUpperInvariant() : null;
                if (ret is null)
                {
                    error = SmtpReplies.BadDsnParameter("RET");
                    return false;
                }

                continue;
            }

            if (keyword.Equals("ENVID", StringComparison.OrdinalIgnoreCase))
            {
                // RFC 3461 §4.4: envid-value = xtext, decoded at most 100 printable US-ASCII characters.
                if (value is null || !Xtext.TryDecode(value, out envelopeId) || envelopeId.Length is 0 or > MaxEnvelopeIdLength)
                {
                    error = SmtpReplies.BadDsnParameter("ENVID");
                    return false;
                }

                continue;
            }

            if (keyword.Equals("AUTH", StringComparison.OrdinalIgnoreCase))
            {
                // RFC 4954 §5: AUTH=xtext (a mailbox or "<>"). It is accepted and recorded; the server trusts only the
                // identity its own AUTH established.
                if (value is null || !Xtext.TryDecode(value, out auth) || auth.Length == 0)
                {
                    error = SmtpReplies.SyntaxParameters;
                    return false;
                }

                continue;
            }

            if (keyword.Equals("SMTPUTF8", StringComparison.OrdinalIgnoreCase) || keyword.Equals("REQUIRETLS", StringComparison.OrdinalIgnoreCase))
            {
                // RFC 6531 §3.4 and RFC 8689 §3: no value.
                if (value is not null)
                {
                    error = SmtpReplies.SyntaxParameters;
                    return false;
                }

                if (keyword.Length == 8)
                {
                    smtpUtf8 = true;
                }
                else
                {
                    requireTls = true;
                }

                continue;
            }

            if (keyword.Equals("SIZE", StringComparison.OrdinalIgnoreCase))
            {
                // RFC 1870 §3: size-value ::= 1*20DIGIT.
                if (size is not null)
                {
                    error = SmtpReplies.DuplicateParameter;
                    return false;
                }

                if (value is null || value.Length is 0 or > 20 || !value.AsSpan().ContainsOnlyDigits())
                {
                    error = SmtpReplies.BadSizeParameter;
                    return false;
                }

                // A 20-digit value may exceed long: it is certainly over any limit, so saturate.
                size = long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed : long.MaxValue;
            }
            else if (keyword.Equals("BODY", StringComparison.OrdinalIgnoreCase))
            {
                if (body is not null)
                {
                    error = SmtpReplies.DuplicateParameter;
                    return false;
                }

                body = value?.ToUpperInvariant() switch
                {
                    "7BIT" => SmtpBodyType.SevenBit,
                    "8BITMIME" => SmtpBodyType.EightBitMime,
                    "BINARYMIME" => SmtpBodyType.BinaryMime,
                    _ => null,
                };
                if (body is null)
                {
                    error = SmtpReplies.BadBodyParameter;
                    return false;
                }
            }
            else
            {
                error = SmtpReplies.UnknownParameter;
                return false;
            }
        }

        result = new MailParameters
        {
            Size = size,
            Body = body ?? SmtpBodyType.SevenBit,
            Ret = ret,
            EnvelopeId = envelopeId,
            Auth = auth,
            SmtpUtf8 = smtpUtf8,
            RequireTls = requireTls,
        };
        return true;
    }
}

/// <summary>The RCPT TO parameters MailMesh understands: NOTIFY and ORCPT (RFC 3461 §4.1, §4.2).</summary>
public sealed class RcptParameters
{
    public static RcptParameters None { get; } = new();

    /// <summary>RFC 3461 §4.1: "NEVER" or a comma list of SUCCESS, FAILURE, DELAY (upper case, in that order), or null.</summary>
    public string? Notify { get; private init; }

    /// <summary>RFC 3461 §4.2 ORCPT as "addr-type;decoded-address" (e.g. "rfc822;user@example.com"), or null.</summary>
    public string? OriginalRecipient { get; private init; }

    /// <summary>RFC 3461 §4.2: the ORCPT value is at most 500 characters.</summary>
    public const int MaxOriginalRecipientLength = 500;

    /// <summary>Interprets RCPT parameters: unknown keywords 555 5.5.4, malformed NOTIFY/ORCPT 501 5.5.4.</summary>
    public static bool TryParse(IReadOnlyList<EsmtpParameter> parameters, [NotNullWhen(true)] out RcptParameters? result, [NotNullWhen(false)] out SmtpReply? error)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        result = null;
        error = null;
        if (parameters.Count == 0)
        {
            result = None;
            return true;
        }

        string? notify = null, orcpt = null;
        foreach (var (keyword, value) in parameters)
        {
            if (keyword.Equals("NOTIFY", StringComparison.OrdinalIgnoreCase))
            {
                if (notify is not null)
                {
                    error = SmtpReplies.DuplicateParameter;
                    return false;
                }

                if (!TryParseNotify(value, out notify))
                {
                    error = SmtpReplies.BadDsnParameter("NOTIFY");
                    return false;
                }
            }
            else if (keyword.Equals("ORCPT", StringComparison.OrdinalIgnoreCase))
            {
                if (orcpt is not null)
                {
                    error = SmtpReplies.DuplicateParameter;
                    return false;
                }

                if (!TryParseOriginalRecipient(value, out orcpt))
                {
                    error = SmtpReplies.BadDsnParameter("ORCPT");
                    return false;
                }
            }
            else
            {
                error = SmtpReplies.UnknownParameter;
                return false;
            }
        }

        result = new RcptParameters { Notify = notify, OriginalRecipient = orcpt };
        return true;
    }

    // RFC 3461 §4.1: notify-esmtp-value = "NEVER" / 1#notify-list-element; notify-list-element = "SUCCESS" / "FAILURE"
    // / "DELAY"; NEVER must not be combined with the others.
    private static bool TryParseNotify(string? value, [NotNullWhen(true)] out string? notify)
    {
        notify = null;
        if (string.IsNullOrEmpty(value))
        {
            return false;
        }

        if (value.Equals("NEVER", StringComparison.OrdinalIgnoreCase))
        {
            notify = "NEVER";
            return true;
        }

        bool success = false, failure = false, delay = false;
        foreach (var element in value.Split(','))
        {
            ref var flag = ref success;
            if (element.Equals("SUCCESS", StringComparison.OrdinalIgnoreCase))
            {
                flag = ref success;
            }
            else if (element.Equals("FAILURE", StringComparison.OrdinalIgnoreCase))
            {
                flag = ref failure;
            }
            else if (element.Equals("DELAY", StringComparison.OrdinalIgnoreCase))
            {
                flag = ref delay;
            }
            else
            {
                return false;
            }

            if (flag)
            {
                return false;
            }

            flag = true;
        }

        notify = string.Join(',', new[] { success ? "SUCCESS" : null, failure ? "FAILURE" : null, delay ? "DELAY" : null }.OfType<string>());
        return true;
    }

    // RFC 3461 §4.2: orcpt-parameter = "ORCPT=" original-recipient-address; original-recipient-address = addr-type ";"
    // xtext; addr-type = atom. RFC 6533 §3 adds "utf-8" as an address type.
    private static bool TryParseOriginalRecipient(string? value, [NotNullWhen(true)] out string? orcpt)
    {
        orcpt = null;
        if (value is null || value.Length > MaxOriginalRecipientLength)
        {
            return false;
        }

        var semicolon = value.IndexOf(';', StringComparison.Ordinal);
        if (semicolon <= 0 || semicolon == value.Length - 1)
        {
            return false;
        }

        var type = value[..semicolon];
        foreach (var c in type)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-')
            {
                return false;
            }
        }

        if (!Xtext.TryDecode(value[(semicolon + 1)..], out var address) || address.Length == 0)
        {
            return false;
        }

        orcpt = type.ToLowerInvariant() + ";" + address;
        return true;
    }
}

/// <summary>RFC 3461 §4 xtext: printable US-ASCII except "+" and "=", with "+XX" hex escapes.</summary>
public static class Xtext
{
    /// <summary>Decodes xtext; false for characters outside xchar or a "+" not followed by two hex digits.</summary>
    public static bool TryDecode(string value, [NotNullWhen(true)] out string? decoded)
    {
        ArgumentNullException.ThrowIfNull(value);
        decoded = null;
        var builder = new System.Text.StringBuilder(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '+')
            {
                // hexchar = "+" 2(%x30-39 / %x41-46): upper-case hex; lower case is tolerated (robustness).
                if (i + 2 >= value.Length || !char.IsAsciiHexDigit(value[i + 1]) || !char.IsAsciiHexDigit(value[i + 2]))
                {
                    return false;
                }

                var b = (char)Convert.ToByte(value.Substring(i + 1, 2), 16);
                if (b is < (char)32 or > (char)126)
                {
                    // Decoded controls or 8-bit have no place in an envelope id or address (space may be quoted).
                    return false;
                }

                builder.Append(b);
                i += 2;
            }
            else if (c is < (char)33 or > (char)126 or '=')
            {
                return false;
            }
            else
            {
                builder.Append(c);
            }
        }

        decoded = builder.ToString();
        return true;
    }

    /// <summary>Encodes text as xtext (RFC 3461 §4).</summary>
    public static string Encode(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var builder = new System.Text.StringBuilder(value.Length);
        foreach (var c in value)
        {
            if (c is < (char)33 or > (char)126 or '+' or '=')
            {
                builder.Append('+').Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}
