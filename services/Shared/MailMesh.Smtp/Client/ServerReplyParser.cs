using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace MailMesh.Smtp.Client;

/// <summary>
/// Parses SMTP replies from a byte sequence (RFC 5321 §4.2). Incremental: <see cref="TryParse"/> returns false when the
/// buffer does not yet hold a complete reply and consumes nothing in that case, so a caller reading from a
/// <c>PipeReader</c> advances to the reader's position and examines the whole buffer.
/// </summary>
/// <remarks>
/// <para>RFC 5321 §4.2.1: a multi-line reply has "code-text" on every line but the last, which is "code SP text" or
/// just "code". Every line must carry the same code; a mismatch is a protocol error.</para>
/// <para>RFC 2034 §4 / RFC 3463: when the server uses enhanced status codes, the text of each line begins with
/// "class.subject.detail" followed by a space. The class must agree with the reply code's first digit; otherwise the
/// text is taken as plain text. Servers that never negotiated ENHANCEDSTATUSCODES may still send codes: they are
/// recognised either way.</para>
/// <para>Lines end in CRLF. A bare LF is tolerated as a line end (robustness principle, RFC 5321 §4.1.1 recommends
/// CRLF strictly only for what we send). A line longer than <see cref="MaxLineLength"/> is an error, never unbounded
/// buffering: RFC 5321 §4.5.3.1.5 allows 512 octets for a reply line; the default leaves room for servers that exceed it.</para>
/// </remarks>
public sealed class ServerReplyParser
{
    /// <summary>Largest accepted reply line, CRLF included.</summary>
    public int MaxLineLength { get; init; } = 4096;

    /// <summary>Most lines accepted in one reply (an EHLO reply is the longest in practice).</summary>
    public int MaxLines { get; init; } = 256;

    /// <summary>
    /// Tries to parse one complete reply from <paramref name="reader"/>. On success the reader is advanced past it;
    /// on false nothing is consumed. Throws <see cref="SmtpReplyException"/> on malformed input.
    /// </summary>
    public bool TryParse(ref SequenceReader<byte> reader, [NotNullWhen(true)] out ServerReply? reply)
    {
        reply = null;
        var probe = reader;
        var lines = new List<string>();
        var code = -1;
        string? enhancedCode = null;
        while (true)
        {
            if (!probe.TryReadTo(out ReadOnlySequence<byte> rawLine, (byte)'\n', advancePastDelimiter: true))
            {
                if (probe.Remaining > MaxLineLength)
                {
                    ThrowLineTooLong();
                }

                return false;
            }

            if (rawLine.Length + 1 > MaxLineLength)
            {
                ThrowLineTooLong();
            }

            var line = rawLine.Length > 0 && EndsWithCr(rawLine) ? rawLine.Slice(0, rawLine.Length - 1) : rawLine;
            ReadOnlySpan<byte> bytes = line.IsSingleSegment ? line.FirstSpan : line.ToArray();
            if (bytes.Length < 3 || !IsDigit(bytes[0], '2', '5') || !IsDigit(bytes[1], '0', '9') || !IsDigit(bytes[2], '0', '9'))
            {
                throw new SmtpReplyException($"Malformed SMTP reply line: '{Printable(bytes)}'.");
            }

            var lineCode = ((bytes[0] - '0') * 100) + ((bytes[1] - '0') * 10) + (bytes[2] - '0');
            if (code < 0)
            {
                code = lineCode;
            }
            else if (lineCode != code)
            {
                throw new SmtpReplyException($"SMTP reply lines disagree on the code: {code} then {lineCode}.");
            }

            bool last;
            if (bytes.Length == 3)
            {
                last = true;
            }
            else if (bytes[3] == (byte)' ')
            {
                last = true;
            }
            else if (bytes[3] == (byte)'-')
            {
                last = false;
            }
            else
            {
                throw new SmtpReplyException($"Malformed SMTP reply line: '{Printable(bytes)}'.");
            }

            // RFC 5321 §4.2: the text is in principle ASCII; RFC 6531 servers may send UTF-8. Decode leniently.
            var text = bytes.Length > 4 ? Encoding.UTF8.GetString(bytes[4..]) : string.Empty;
            var (lineEnhanced, rest) = SplitEnhancedCode(text, code);
            if (lines.Count == 0)
            {
                enhancedCode = lineEnhanced;
            }

            lines.Add(rest);
            if (lines.Count > MaxLines)
            {
                throw new SmtpReplyException($"SMTP reply has more than {MaxLines} lines.");
            }

            if (last)
            {
                reader = probe;
                reply = new ServerReply(code, enhancedCode, lines);
                return true;
            }
        }
    }

    /// <summary>
    /// Splits a leading RFC 3463 code ("class.subject.detail", class matching the reply's first digit; subject and
    /// detail 1..3 digits) off the text.
    /// </summary>
    public static (string? EnhancedCode, string Text) SplitEnhancedCode(string text, int replyCode)
    {
        var expectedClass = (char)('0' + (replyCode / 100));
        if (text.Length < 5 || text[0] != expectedClass || text[1] != '.')
        {
            return (null, text);
        }

        var i = 2;
        var subjectDigits = CountDigits(text, ref i);
        if (subjectDigits is < 1 or > 3 || i >= text.Length || text[i] != '.')
        {
            return (null, text);
        }

        i++;
        var detailDigits = CountDigits(text, ref i);
        if (detailDigits is < 1 or > 3 || (i < text.Length && text[i] != ' '))
        {
            return (null, text);
        }

        var code = text[..i];
        var rest = i < text.Length ? text[(i + 1)..] : string.Empty;
        return (code, rest);
    }

    private static int CountDigits(string text, ref int index)
    {
        var start = index;
        while (index < text.Length && char.IsAsciiDigit(text[index]))
        {
            index++;
        }

        return index - start;
    }

    private static bool EndsWithCr(ReadOnlySequence<byte> line)
    {
        var last = line.Slice(line.Length - 1);
        return last.FirstSpan[0] == (byte)'\r';
    }

    private static bool IsDigit(byte b, char min, char max) => b >= (byte)min && b <= (byte)max;

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var text = Encoding.ASCII.GetString(bytes[..Math.Min(bytes.Length, 80)]);
        return new string(text.Select(c => char.IsControl(c) ? '?' : c).ToArray());
    }

    [DoesNotReturn]
    private void ThrowLineTooLong() =>
        throw new SmtpReplyException($"SMTP reply line longer than {MaxLineLength} octets.");
}
