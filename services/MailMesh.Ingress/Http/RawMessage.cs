using System.Buffers;
using System.Text;

namespace MailMesh.Ingress.Http;

/// <summary>One header field of a raw message: where it is in the content and its unfolded value.</summary>
internal sealed record RawHeader(string Name, int Start, int End, string Value);

/// <summary>
/// The header section of a message submitted as message/rfc822, normalised for the spool (CRLF line ends, RFC 5322
/// §2.1, by <see cref="LineEndingNormalizer"/> as the body arrives): the fields located, Bcc removed and Date /
/// Message-ID added when absent (RFC 6409 §8, what an MSA may do). The body is never copied: it is stored from the
/// buffer (or spill file) it was received into.
/// </summary>
internal sealed class RawMessage
{
    private RawMessage(byte[] content, List<RawHeader> headers, int headerEnd, bool has8Bit)
    {
        Content = content;
        Headers = headers;
        HeaderEnd = headerEnd;
        Has8BitData = has8Bit;
    }

    /// <summary>The header section with CRLF line ends (up to <see cref="HeaderEnd"/>; the body is not kept here).</summary>
    public byte[] Content { get; }

    public IReadOnlyList<RawHeader> Headers { get; }

    /// <summary>Offset just past the CRLF of the last header field (where the empty line or the end is).</summary>
    public int HeaderEnd { get; }

    /// <summary>Octets above 127 anywhere (an 8BITMIME message, RFC 6152).</summary>
    public bool Has8BitData { get; }

    public IEnumerable<RawHeader> All(string name) => Headers.Where(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    public bool Has(string name) => Headers.Any(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    public static string LongLineError(int line, int maxLineLength) =>
        $"Line {line} is longer than {maxLineLength} octets including CRLF (Ingress:MaxTextLineLength; RFC 5322 §2.1.1 allows 998).";

    /// <summary>
    /// Parses the header section at the start of <paramref name="content"/>, which is already normalised (CRLF line
    /// ends, ending in CRLF when <paramref name="whole"/>). When <paramref name="whole"/> is false it is only the head of
    /// a longer message (a spilled body): the header section must end inside it. The parsed message keeps only the
    /// header section (<see cref="Content"/>, a copy of it: small, unlike the body).
    /// </summary>
    public static RawMessage? TryParseHeaderSection(ReadOnlySpan<byte> content, bool whole, bool has8Bit, out string error)
    {
        error = string.Empty;
        List<RawHeader> headers = [];
        var position = 0;
        var lineNumber = 0;
        var headerEnd = content.Length;
        var ended = false;
        string? name = null;
        var fieldStart = 0;
        while (position < content.Length)
        {
            lineNumber++;
            var found = content[position..].IndexOf("\r\n"u8);
            if (found < 0)
            {
                // Only in a head cut short: the line goes on past it.
                break;
            }

            var end = found + position;
            var line = content.Slice(position, end - position);
            if (line.IsEmpty)
            {
                headerEnd = position;
                ended = true;
                break;
            }

            if (line[0] is (byte)' ' or (byte)'\t')
            {
                if (name is null)
                {
                    error = $"Line {lineNumber} starts with white space but no header field precedes it (RFC 5322 §2.2.3).";
                    return null;
                }
            }
            else
            {
                if (name is not null)
                {
                    headers.Add(Field(content, name, fieldStart, position));
                }

                var colon = line.IndexOf((byte)':');
                var fieldName = colon > 0 ? line[..colon].TrimEnd(" \t"u8) : default;
                if (fieldName.IsEmpty || !IsFieldName(fieldName))
                {
                    error = lineNumber == 1
                        ? "The body is not an RFC 5322 message: the first line is not a header field (\"Name: value\")."
                        : $"Line {lineNumber} is not a header field (\"Name: value\", RFC 5322 §2.2) and no empty line separates the header section from the body.";
                    return null;
                }

                name = Encoding.ASCII.GetString(fieldName);
                fieldStart = position;
            }

            position = end + 2;
            headerEnd = position;
        }

        if (!ended && !whole)
        {
            error = $"The header section is longer than {content.Length} octets.";
            return null;
        }

        if (name is not null)
        {
            headers.Add(Field(content, name, fieldStart, headerEnd));
        }

        return new RawMessage(content[..headerEnd].ToArray(), headers, headerEnd, has8Bit);
    }

    /// <summary>
    /// The header section to store: <paramref name="remove"/> fields dropped and <paramref name="add"/> fields
    /// ("Name: value", without CRLF) appended. The body (everything from <see cref="HeaderEnd"/> on, the empty line
    /// included) is not copied: the caller streams it after this.
    /// </summary>
    public byte[] RewriteHeaderSection(IReadOnlyCollection<string> remove, IReadOnlyList<string> add)
    {
        var output = new ArrayBufferWriter<byte>(HeaderEnd + 256);
        var position = 0;
        foreach (var header in Headers.Where(h => remove.Contains(h.Name, StringComparer.OrdinalIgnoreCase)))
        {
            output.Write(Content.AsSpan(position, header.Start - position));
            position = header.End;
        }

        output.Write(Content.AsSpan(position, HeaderEnd - position));
        foreach (var field in add)
        {
            output.Write(Encoding.ASCII.GetBytes(field + "\r\n"));
        }

        return output.WrittenSpan.ToArray();
    }

    private static RawHeader Field(ReadOnlySpan<byte> content, string name, int start, int end)
    {
        // RFC 5322 §2.2.3: unfolding removes each CRLF that precedes white space. RFC 6532: values may be UTF-8.
        var raw = content.Slice(start, end - start);
        var colon = raw.IndexOf((byte)':');
        var value = Encoding.UTF8.GetString(raw[(colon + 1)..]).Replace("\r\n", string.Empty, StringComparison.Ordinal).Trim();
        return new RawHeader(name, start, end, value);
    }

    /// <summary>RFC 5322 §3.6.8: field-name = 1*ftext (printable US-ASCII except ":").</summary>
    private static bool IsFieldName(ReadOnlySpan<byte> name)
    {
        foreach (var b in name)
        {
            if (b is <= 32 or >= 127 or (byte)':')
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>
/// Copies a message as it arrives with every line ending as CRLF (a bare CR, a bare LF and CRLF all end a line; RFC 5322
/// §2.1) and a final CRLF, and finds the first line longer than the limit. Streaming: a CR at the end of one piece is
/// held until the next shows whether an LF follows.
/// </summary>
internal sealed class LineEndingNormalizer(int maxLineLength)
{
    private bool _pendingCr;
    private bool _lineOpen;
    private long _lineLength;
    private int _line = 1;

    /// <summary>The first line (1-based) longer than the limit including CRLF, or 0.</summary>
    public int LongLine { get; private set; }

    public void Write(ReadOnlySpan<byte> input, IBufferWriter<byte> output)
    {
        var rest = input;
        if (_pendingCr && !rest.IsEmpty)
        {
            _pendingCr = false;
            EndLine(output);
            if (rest[0] == (byte)'\n')
            {
                rest = rest[1..];
            }
        }

        while (!rest.IsEmpty)
        {
            var index = rest.IndexOfAny((byte)'\r', (byte)'\n');
            var text = index < 0 ? rest : rest[..index];
            if (!text.IsEmpty)
            {
                output.Write(text);
                _lineLength += text.Length;
                _lineOpen = true;
            }

            if (index < 0)
            {
                return;
            }

            if (rest[index] == (byte)'\r' && index + 1 == rest.Length)
            {
                _pendingCr = true;
                return;
            }

            EndLine(output);
            rest = rest[(index + (rest[index] == (byte)'\r' && rest[index + 1] == (byte)'\n' ? 2 : 1))..];
        }
    }

    /// <summary>The end of the message: the last line gets its CRLF.</summary>
    public void Complete(IBufferWriter<byte> output)
    {
        if (_pendingCr || _lineOpen)
        {
            _pendingCr = false;
            EndLine(output);
        }
    }

    private void EndLine(IBufferWriter<byte> output)
    {
        output.Write("\r\n"u8);
        if (LongLine == 0 && _lineLength + 2 > maxLineLength)
        {
            LongLine = _line;
        }

        _line++;
        _lineLength = 0;
        _lineOpen = false;
    }
}
