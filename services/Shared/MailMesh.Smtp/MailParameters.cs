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

/// <summary>The MAIL FROM parameters MailMesh understands: SIZE (RFC 1870) and BODY (RFC 6152).</summary>
public sealed class MailParameters
{
    public static MailParameters None { get; } = new();

    /// <summary>The declared message size, or null when not given.</summary>
    public long? Size { get; private init; }

    public SmtpBodyType Body { get; private init; } = SmtpBodyType.SevenBit;

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
        foreach (var (keyword, value) in parameters)
        {
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

        result = new MailParameters { Size = size, Body = body ?? SmtpBodyType.SevenBit };
        return true;
    }
}
