using System.Buffers;

namespace MailMesh.Smtp;

/// <summary>The outcome of one <see cref="SmtpLineReader.TryReadLine"/> call.</summary>
public enum LineStatus
{
    /// <summary>No complete line yet: read more bytes (everything examined may be marked examined).</summary>
    NeedMore,

    /// <summary>A line, without its CRLF.</summary>
    Line,

    /// <summary>The line exceeded the limit; it has been discarded up to and including its end. Reply 500 5.5.2.</summary>
    TooLong,

    /// <summary>The line contained a bare CR or ended in a bare LF (RFC 5321 §2.3.8). Reply 500 5.5.2.</summary>
    BareLineEnding,
}

/// <summary>
/// Reads CRLF-terminated command lines from a byte stream in any split. RFC 5321 §2.3.8: lines end only in CRLF; a
/// bare LF ends the offending line (so a client that sends bare LFs gets an answer rather than a timeout) and is
/// reported as an error, a bare CR inside a line makes the whole line an error. A line longer than the limit
/// (RFC 5321 §4.5.3.1.4: 512 octets including CRLF for commands) is reported once its end arrives, and the bytes in
/// between are consumed as they come, so memory stays bounded by the limit whatever the client sends.
/// </summary>
public struct SmtpLineReader
{
    private readonly int _maxLength;
    private bool _discarding;

    /// <param name="maxLength">The longest line accepted, including its CRLF.</param>
    public SmtpLineReader(int maxLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 3);
        _maxLength = maxLength;
    }

    public readonly int MaxLength => _maxLength;

    /// <summary>True while the tail of an overlong line is being discarded.</summary>
    public readonly bool IsDiscarding => _discarding;

    /// <summary>
    /// Reads one line. Returns <see cref="LineStatus.NeedMore"/> when the input holds no complete line (the reader
    /// is left at the start of the partial line, or at the end when discarding). For <see cref="LineStatus.Line"/>
    /// <paramref name="line"/> is the line without CRLF and the reader is past the CRLF.
    /// </summary>
    public LineStatus TryReadLine(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> line)
    {
        line = default;
        if (_discarding)
        {
            if (!reader.TryAdvanceTo((byte)'\n', advancePastDelimiter: true))
            {
                reader.AdvanceToEnd();
                return LineStatus.NeedMore;
            }

            _discarding = false;
            return LineStatus.TooLong;
        }

        var unread = reader.UnreadSequence;
        var window = unread.Length > _maxLength ? unread.Slice(0, _maxLength) : unread;
        var lf = window.PositionOf((byte)'\n');
        if (lf is null)
        {
            if (unread.Length < _maxLength)
            {
                return LineStatus.NeedMore;
            }

            // No LF within the limit: the line is too long. Discard up to its end, now or as it arrives.
            _discarding = true;
            return TryReadLine(ref reader, out line);
        }

        var withLf = unread.Slice(0, unread.GetPosition(1, lf.Value));
        reader.Advance(withLf.Length);
        var content = withLf.Slice(0, withLf.Length - 1);
        if (content.IsEmpty || LastByte(content) != '\r')
        {
            return LineStatus.BareLineEnding;
        }

        content = content.Slice(0, content.Length - 1);
        if (content.PositionOf((byte)'\r') is not null)
        {
            return LineStatus.BareLineEnding;
        }

        line = content;
        return LineStatus.Line;
    }

    private static byte LastByte(in ReadOnlySequence<byte> sequence) =>
        sequence.IsSingleSegment ? sequence.FirstSpan[^1] : sequence.Slice(sequence.Length - 1).FirstSpan[0];
}
