using System.Text;

namespace MailMesh.Delivery.Dkim;

/// <summary>One header field of a message: its name and where its octets (folding and final CRLF included) are.</summary>
internal readonly record struct HeaderField(string Name, int Start, int Length);

/// <summary>
/// The header section of a message as stored (RFC 5322 §2.2): the fields in order and where the body starts. Only the
/// header section is read; the body is never touched.
/// </summary>
internal sealed class HeaderFields
{
    private HeaderFields(List<HeaderField> fields, int bodyStart)
    {
        Fields = fields;
        BodyStart = bodyStart;
    }

    public IReadOnlyList<HeaderField> Fields { get; }

    /// <summary>Offset of the body (after the empty line); the content's length when there is no body.</summary>
    public int BodyStart { get; }

    /// <summary>
    /// Splits the header section of <paramref name="content"/>; null when it is not a header section DKIM can sign (a
    /// line that is neither a field nor a continuation, or a field without CRLF).
    /// </summary>
    public static HeaderFields? Parse(ReadOnlySpan<byte> content)
    {
        var fields = new List<HeaderField>();
        var offset = 0;
        while (offset < content.Length)
        {
            var rest = content[offset..];
            if (rest.StartsWith("\r\n"u8))
            {
                // RFC 5322 §2.1: the empty line ends the header section.
                return new HeaderFields(fields, offset + 2);
            }

            var colon = rest.IndexOfAny((byte)':', (byte)'\r', (byte)'\n');
            if (colon <= 0 || rest[colon] != (byte)':' || rest[0] is (byte)' ' or (byte)'\t')
            {
                return null;
            }

            // The field runs to the CRLF that is not followed by WSP (RFC 5322 §2.2.3 folding).
            var end = colon;
            while (true)
            {
                var crlf = rest[end..].IndexOf("\r\n"u8);
                if (crlf < 0)
                {
                    return null;
                }

                end += crlf + 2;
                if (end >= rest.Length || rest[end] is not ((byte)' ' or (byte)'\t'))
                {
                    break;
                }
            }

            var name = Encoding.ASCII.GetString(rest[..colon].TrimEnd(" \t"u8));
            fields.Add(new HeaderField(name, offset, end));
            offset += end;
        }

        // Only a header section, no empty line and no body.
        return new HeaderFields(fields, content.Length);
    }

    /// <summary>The value of a field: the octets after the colon up to (not including) the final CRLF, unfolded.</summary>
    public static string Value(ReadOnlySpan<byte> content, HeaderField field)
    {
        var octets = content.Slice(field.Start, field.Length);
        var value = octets[(octets.IndexOf((byte)':') + 1)..];
        return Encoding.UTF8.GetString(value).Replace("\r\n", string.Empty, StringComparison.Ordinal).Trim();
    }
}
