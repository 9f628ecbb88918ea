using System.Text;

namespace MailMesh.Ingress.Acceptance;

/// <summary>Walking the header fields at the start of a message (RFC 5322 §2.2: a field and its folded continuation
/// lines, each ending in CRLF) without parsing the rest.</summary>
internal static class HeaderFields
{
    /// <summary>
    /// The end (just past its last CRLF) of the field that starts at <paramref name="start"/>, or -1 when the field is
    /// not complete within <paramref name="head"/> (or <paramref name="start"/> is the empty line that ends the section).
    /// A field's end is only known when the next line is seen, so the last field of a partial head counts as incomplete
    /// unless <paramref name="complete"/> says the head is the whole message.
    /// </summary>
    public static int FieldEnd(ReadOnlySpan<byte> head, int start, bool complete)
    {
        if (start >= head.Length || head[start..].StartsWith("\r\n"u8))
        {
            return -1;
        }

        var position = start;
        while (true)
        {
            var line = head[position..].IndexOf("\r\n"u8);
            if (line < 0)
            {
                return complete ? head.Length : -1;
            }

            position += line + 2;
            if (position >= head.Length)
            {
                return complete ? position : -1;
            }

            if (head[position] is not (byte)' ' and not (byte)'\t')
            {
                return position;
            }
        }
    }

    /// <summary>The field's name (before the colon), or empty when the line has no colon.</summary>
    public static ReadOnlySpan<byte> Name(ReadOnlySpan<byte> field)
    {
        var colon = field.IndexOf((byte)':');
        var line = field.IndexOf("\r\n"u8);
        return colon < 0 || (line >= 0 && colon > line) ? [] : field[..colon].TrimEnd(" \t"u8);
    }

    /// <summary>The field's body after the colon, as text (Latin-1, enough for the ASCII tokens compared).</summary>
    public static string Value(ReadOnlySpan<byte> field)
    {
        var colon = field.IndexOf((byte)':');
        return colon < 0 ? string.Empty : Encoding.Latin1.GetString(field[(colon + 1)..]);
    }

    /// <summary>The length of this server's own trace fields at the start of an SMTP message: the Received-SPF fields
    /// and the one Received field the session wrote before the client's content.</summary>
    public static int OwnTraceLength(ReadOnlySpan<byte> head)
    {
        var position = 0;
        while (FieldEnd(head, position, complete: false) is var end and > 0)
        {
            var name = Name(head[position..end]);
            position = end;
            if (Ascii.EqualsIgnoreCase(name, "Received"u8))
            {
                return position;
            }

            if (!Ascii.EqualsIgnoreCase(name, "Received-SPF"u8))
            {
                break;
            }
        }

        throw new InvalidOperationException("The message does not start with this server's Received header.");
    }
}
