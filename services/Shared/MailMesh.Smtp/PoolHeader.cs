using System.Text;

namespace MailMesh.Smtp;

/// <summary>
/// The <c>X-MailMesh-Pool</c> header field (issue 11, docs/delivery.md "IP pools"): an authenticated submitter names the
/// source-IP pool of its message with it. Ingress reads it (only from authenticated submissions) and Delivery removes it
/// before the message leaves, so it never reaches a destination. Pool names are 1-64 characters of letters, digits and
/// <c>. _ -</c>.
/// </summary>
public static class PoolHeader
{
    /// <summary>The field name.</summary>
    public const string Name = "X-MailMesh-Pool";

    private static ReadOnlySpan<byte> Prefix => "X-MailMesh-Pool:"u8;

    /// <summary>True when <paramref name="name"/> is a well-formed pool name.</summary>
    public static bool IsValidName(string? name) =>
        name is { Length: > 0 and <= 64 } && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>
    /// The value of the first X-MailMesh-Pool field in the header section (up to the first empty line) of
    /// <paramref name="content"/>, trimmed and unfolded; null when there is none. The value is not checked.
    /// </summary>
    public static string? Find(ReadOnlySpan<byte> content)
    {
        foreach (var (start, end) in Fields(content))
        {
            var field = content[start..end];
            if (IsPoolField(field))
            {
                var value = Encoding.Latin1.GetString(field[Prefix.Length..]).Replace("\r", string.Empty, StringComparison.Ordinal)
                    .Replace("\n", string.Empty, StringComparison.Ordinal);
                return value.Trim();
            }
        }

        return null;
    }

    /// <summary>True when the header section of <paramref name="content"/> has an X-MailMesh-Pool field.</summary>
    public static bool IsPresent(ReadOnlySpan<byte> content)
    {
        foreach (var (start, end) in Fields(content))
        {
            if (IsPoolField(content[start..end]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The content without any X-MailMesh-Pool field (with its folded lines); the rest byte for byte.</summary>
    public static byte[] Remove(ReadOnlySpan<byte> content)
    {
        var output = new byte[content.Length];
        var written = 0;
        var position = 0;
        foreach (var (start, end) in Fields(content))
        {
            if (IsPoolField(content[start..end]))
            {
                content[position..start].CopyTo(output.AsSpan(written));
                written += start - position;
                position = end;
            }
        }

        content[position..].CopyTo(output.AsSpan(written));
        written += content.Length - position;
        return output[..written];
    }

    private static bool IsPoolField(ReadOnlySpan<byte> field) =>
        field.Length >= Prefix.Length && Ascii.EqualsIgnoreCase(field[..Prefix.Length], Prefix);

    /// <summary>Each header field (with its continuation lines and line ends) as [start, end) offsets.</summary>
    private static List<(int Start, int End)> Fields(ReadOnlySpan<byte> content)
    {
        var fields = new List<(int, int)>();
        var position = 0;
        var fieldStart = -1;
        while (position < content.Length)
        {
            var lf = content[position..].IndexOf((byte)'\n');
            var lineEnd = lf < 0 ? content.Length : position + lf + 1;
            var line = content[position..lineEnd];
            if (line is [(byte)'\r', (byte)'\n'] or [(byte)'\n'])
            {
                break;
            }

            // RFC 5322 §2.2.3: a line that starts with white space continues the field before it.
            if (line[0] is not ((byte)' ' or (byte)'\t'))
            {
                if (fieldStart >= 0)
                {
                    fields.Add((fieldStart, position));
                }

                fieldStart = position;
            }

            position = lineEnd;
        }

        if (fieldStart >= 0)
        {
            fields.Add((fieldStart, position));
        }

        return fields;
    }
}
