using System.Text;

namespace MailMesh.Smtp;

/// <summary>Trace header fields (RFC 5321 §4.4) in the RFC 5322 header section of raw message content.</summary>
public static class TraceHeaders
{
    /// <summary>
    /// Counts "Received:" header fields in the header section (up to the first empty line) of <paramref name="content"/>.
    /// RFC 5321 §6.3: a message with too many of them is in a loop.
    /// </summary>
    public static int CountReceived(ReadOnlySpan<byte> content)
    {
        var count = 0;
        while (!content.IsEmpty)
        {
            var lf = content.IndexOf((byte)'\n');
            var line = lf < 0 ? content : content[..lf];
            if (line.IsEmpty || line is [(byte)'\r'])
            {
                break;
            }

            if (line.Length >= 9 && Ascii.EqualsIgnoreCase(line[..9], "Received:"u8))
            {
                count++;
            }

            content = lf < 0 ? default : content[(lf + 1)..];
        }

        return count;
    }
}
