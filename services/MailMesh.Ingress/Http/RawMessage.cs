using System.Buffers;
using System.Text;

namespace MailMesh.Ingress.Http;

/// <summary>One header field of a raw message: where it is in the content and its unfolded value.</summary>
internal sealed record RawHeader(string Name, int Start, int End, string Value);

/// <summary>
/// A message submitted as message/rfc822, normalised for the spool: CRLF line ends (RFC 5322 §2.1), the header
/// section located, Bcc removed and Date / Message-ID added when absent (RFC 6409 §8, what an MSA may do).
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

    /// <summary>The message with CRLF line ends, ending in CRLF.</summary>
    public byte[] Content { get; }

    public IReadOnlyList<RawHeader> Headers { get; }

    /// <summary>Offset just past the CRLF of the last header field (where the empty line or the end is).</summary>
    public int HeaderEnd { get; }

    /// <summary>Octets above 127 anywhere (an 8BITMIME message, RFC 6152).</summary>
    public bool Has8BitData { get; }

    public IEnumerable<RawHeader> All(string name) => Headers.Where(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    public bool Has(string name) => Headers.Any(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Normalises bare CR and bare LF to CRLF, checks line lengths and parses the header section (RFC 5322 §2.2:
    /// "name: value" fields, continuation lines start with white space, an empty line before the body).
    /// </summary>
    public static RawMessage? TryParse(ReadOnlySpan<byte> input, int maxLineLength, out string error)
    {
        error = string.Empty;
        if (input.IsEmpty)
        {
            error = "The message is empty.";
            return null;
        }

        var content = NormalizeLineEndings(input, maxLineLength, out var longLine, out var has8Bit);
        if (longLine > 0)
        {
            error = $"Line {longLine} is longer than {maxLineLength} octets including CRLF (Ingress:MaxTextLineLength; RFC 5322 §2.1.1 allows 998).";
            return null;
        }

        List<RawHeader> headers = [];
        var position = 0;
        var lineNumber = 0;
        var headerEnd = content.Length;
        string? name = null;
        var fieldStart = 0;
        while (position < content.Length)
        {
            lineNumber++;
            var end = content.AsSpan(position).IndexOf("\r\n"u8) + position;
            var line = content.AsSpan(position, end - position);
            if (line.IsEmpty)
            {
                headerEnd = position;
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

        if (name is not null)
        {
            headers.Add(Field(content, name, fieldStart, headerEnd));
        }

        return new RawMessage(content, headers, headerEnd, has8Bit);
    }

    /// <summary>
    /// The content to store: <paramref name="remove"/> fields dropped and <paramref name="add"/> fields ("Name: value",
    /// without CRLF) appended to the header section.
    /// </summary>
    public byte[] Rewrite(IReadOnlyCollection<string> remove, IReadOnlyList<string> add)
    {
        var output = new ArrayBufferWriter<byte>(Content.Length + 256);
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

        output.Write(Content.AsSpan(HeaderEnd));
        return output.WrittenSpan.ToArray();
    }

    private static RawHeader Field(byte[] content, string name, int start, int end)
    {
        // RFC 5322 §2.2.3: unfolding removes each CRLF that precedes white space. RFC 6532: values may be UTF-8.
        var raw = content.AsSpan(start, end - start);
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

    /// <summary>
    /// Copies <paramref name="input"/> with every line ending as CRLF (a bare CR, a bare LF and CRLF all end a line) and a
    /// final CRLF. <paramref name="longLine"/> is the first line (1-based) longer than the limit, or 0.
    /// </summary>
    internal static byte[] NormalizeLineEndings(ReadOnlySpan<byte> input, int maxLineLength, out int longLine, out bool has8Bit)
    {
        var output = new ArrayBufferWriter<byte>(input.Length + 2);
        longLine = 0;
        has8Bit = input.IndexOfAnyExceptInRange((byte)0, (byte)127) >= 0;
        var line = 1;
        var rest = input;
        while (!rest.IsEmpty)
        {
            var index = rest.IndexOfAny((byte)'\r', (byte)'\n');
            var text = index < 0 ? rest : rest[..index];
            if (longLine == 0 && text.Length + 2 > maxLineLength)
            {
                longLine = line;
            }

            output.Write(text);
            output.Write("\r\n"u8);
            if (index < 0)
            {
                break;
            }

            var ending = rest[index] == '\r' && index + 1 < rest.Length && rest[index + 1] == '\n' ? 2 : 1;
            rest = rest[(index + ending)..];
            line++;
        }

        return output.WrittenSpan.ToArray();
    }
}
