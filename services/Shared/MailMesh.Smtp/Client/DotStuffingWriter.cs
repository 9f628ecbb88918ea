using System.Buffers;

namespace MailMesh.Smtp.Client;

/// <summary>
/// Writes message content as the DATA section of an SMTP transaction (RFC 5321 §4.5.2): a '.' is added before every
/// line that starts with '.', the content is made to end with CRLF, and <see cref="Complete"/> writes the terminating
/// ".\r\n". Streaming: content may arrive in any number of chunks split at any byte.
/// </summary>
/// <remarks>
/// The spool stores content with CRLF line ends, so normally bytes are copied run by run. Should a bare CR or bare LF
/// ever be present, it is written as CRLF: RFC 5321 §2.3.8 forbids bare CR and LF in SMTP data, and sending one would
/// either corrupt the message or (with a bare LF before ".") open the door to SMTP smuggling. Converting rather than
/// rejecting is what Postfix and Exim do when relaying. All other bytes, including 8-bit ones, pass unchanged.
/// </remarks>
public sealed class DotStuffingWriter
{
    private const byte Cr = (byte)'\r';
    private const byte Lf = (byte)'\n';
    private const byte Dot = (byte)'.';

    private readonly IBufferWriter<byte> _output;
    private bool _atLineStart = true;
    private bool _pendingCr;
    private bool _completed;

    public DotStuffingWriter(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _output = output;
    }

    /// <summary>Octets written to the output so far (after stuffing and line-end repair).</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Bare CR or LF octets that were converted to CRLF.</summary>
    public int LineEndsRepaired { get; private set; }

    /// <summary>Writes the next chunk of content.</summary>
    public void Write(ReadOnlySpan<byte> content)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        while (!content.IsEmpty)
        {
            if (_pendingCr)
            {
                _pendingCr = false;
                if (content[0] == Lf)
                {
                    content = content[1..];
                }
                else
                {
                    LineEndsRepaired++;
                }

                Emit("\r\n"u8);
                _atLineStart = true;
                continue;
            }

            if (_atLineStart)
            {
                // RFC 5321 §4.5.2: "Before sending a line of mail text, the SMTP client checks the first character of
                // the line. If it is a period, one additional period is inserted at the beginning of the line."
                if (content[0] == Dot)
                {
                    Emit([Dot]);
                }

                _atLineStart = false;
            }

            var end = content.IndexOfAny(Cr, Lf);
            if (end < 0)
            {
                Emit(content);
                return;
            }

            Emit(content[..end]);
            if (content[end] == Lf)
            {
                // A bare LF (a CR would have been seen first).
                LineEndsRepaired++;
                Emit("\r\n"u8);
                _atLineStart = true;
            }
            else
            {
                _pendingCr = true;
            }

            content = content[(end + 1)..];
        }
    }

    /// <summary>Ends the content with CRLF if it does not already, then writes the end-of-data indicator ".\r\n".</summary>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (_pendingCr)
        {
            _pendingCr = false;
            LineEndsRepaired++;
            Emit("\r\n"u8);
            _atLineStart = true;
        }

        // RFC 5321 §4.1.1.4: the mail data ends with CRLF.CRLF; a message not ending in CRLF gets one added.
        if (!_atLineStart)
        {
            Emit("\r\n"u8);
        }

        Emit(".\r\n"u8);
        _completed = true;
    }

    /// <summary>Dot-stuffs a whole message into a new array (tests and small messages).</summary>
    public static byte[] Stuff(ReadOnlySpan<byte> content)
    {
        var buffer = new ArrayBufferWriter<byte>(content.Length + 64);
        var writer = new DotStuffingWriter(buffer);
        writer.Write(content);
        writer.Complete();
        return buffer.WrittenSpan.ToArray();
    }

    private void Emit(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return;
        }

        _output.Write(bytes);
        BytesWritten += bytes.Length;
    }
}
