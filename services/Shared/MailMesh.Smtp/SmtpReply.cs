using System.Buffers;
using System.Globalization;
using System.Text;

namespace MailMesh.Smtp;

/// <summary>
/// One SMTP reply (RFC 5321 §4.2): a three-digit code, an optional RFC 3463 enhanced status code and one or more
/// text lines. Multi-line replies are written "250-first", "250-...", "250 last" (§4.2.1); the enhanced code prefixes
/// every line (RFC 2034 §4).
/// </summary>
public sealed class SmtpReply
{
    private readonly string[] _lines;

    public SmtpReply(int code, string? enhancedCode, params string[] lines)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(code, 200);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(code, 599);
        ArgumentNullException.ThrowIfNull(lines);
        if (enhancedCode is not null && !IsValidEnhancedCode(enhancedCode, code))
        {
            throw new ArgumentException($"'{enhancedCode}' is not an RFC 3463 code whose class matches {code}.", nameof(enhancedCode));
        }

        Code = code;
        EnhancedCode = enhancedCode;
        _lines = lines.Length == 0 ? [string.Empty] : Array.ConvertAll(lines, Sanitize);
    }

    public int Code { get; }

    public string? EnhancedCode { get; }

    public IReadOnlyList<string> Lines => _lines;

    /// <summary>2xx or 3xx.</summary>
    public bool IsPositive => Code < 400;

    /// <summary>4xx: the client should try again later.</summary>
    public bool IsTransient => Code is >= 400 and < 500;

    /// <summary>5xx: the client must not repeat the same request.</summary>
    public bool IsPermanent => Code >= 500;

    /// <summary>The number of octets <see cref="WriteTo"/> writes.</summary>
    public int EncodedLength
    {
        get
        {
            var prefix = 4 + (EnhancedCode is null ? 0 : EnhancedCode.Length + 1);
            var length = 0;
            foreach (var line in _lines)
            {
                length += prefix + line.Length + 2;
            }

            return length;
        }
    }

    /// <summary>Writes the reply in wire form (ASCII, CRLF line ends).</summary>
    public void WriteTo(IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var span = writer.GetSpan(EncodedLength);
        var written = Format(span);
        writer.Advance(written);
    }

    /// <summary>Formats the reply into <paramref name="destination"/>, which must hold <see cref="EncodedLength"/> octets.</summary>
    public int Format(Span<byte> destination)
    {
        var position = 0;
        for (var i = 0; i < _lines.Length; i++)
        {
            var last = i == _lines.Length - 1;
            destination[position++] = (byte)('0' + (Code / 100));
            destination[position++] = (byte)('0' + (Code / 10 % 10));
            destination[position++] = (byte)('0' + (Code % 10));
            destination[position++] = last ? (byte)' ' : (byte)'-';
            if (EnhancedCode is not null)
            {
                position += Encoding.ASCII.GetBytes(EnhancedCode, destination[position..]);
                destination[position++] = (byte)' ';
            }

            position += Encoding.ASCII.GetBytes(_lines[i], destination[position..]);
            destination[position++] = (byte)'\r';
            destination[position++] = (byte)'\n';
        }

        return position;
    }

    /// <summary>The reply in wire form, for logs and tests.</summary>
    public override string ToString()
    {
        var buffer = new byte[EncodedLength];
        Format(buffer);
        return Encoding.ASCII.GetString(buffer);
    }

    /// <summary>The first line without the code, e.g. "5.7.1 Relay access denied", for logs and telemetry.</summary>
    public string Summary => EnhancedCode is null
        ? string.Create(CultureInfo.InvariantCulture, $"{Code} {_lines[0]}")
        : string.Create(CultureInfo.InvariantCulture, $"{Code} {EnhancedCode} {_lines[0]}");

    /// <summary>True when <paramref name="code"/> is class.subject.detail (RFC 3463 §2) and its class matches <paramref name="replyCode"/>.</summary>
    public static bool IsValidEnhancedCode(string code, int replyCode)
    {
        ArgumentNullException.ThrowIfNull(code);
        var parts = code.Split('.');
        if (parts.Length != 3 || parts[0].Length != 1 || parts[0][0] - '0' != replyCode / 100 || parts[0][0] is not ('2' or '4' or '5'))
        {
            return false;
        }

        // RFC 3463 §2: subject 1*3digit, detail 1*3digit, no leading zeros beyond a single zero.
        return IsNumber(parts[1]) && IsNumber(parts[2]);

        static bool IsNumber(string part) =>
            part.Length is >= 1 and <= 3 && part.All(char.IsAsciiDigit) && (part.Length == 1 || part[0] != '0');
    }

    // Reply text is printable US-ASCII (RFC 5321 §4.2: textstring = 1*(%d09 / %d32-126)); anything else (text from
    // policy, exception messages) is replaced so it can never break the framing of the reply.
    private static string Sanitize(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        foreach (var c in line)
        {
            if (c is not ('\t' or (>= ' ' and <= '~')))
            {
                return string.Create(line.Length, line, static (span, source) =>
                {
                    for (var i = 0; i < source.Length; i++)
                    {
                        span[i] = source[i] is '\t' or (>= ' ' and <= '~') ? source[i] : '?';
                    }
                });
            }
        }

        return line;
    }
}
