using System.Buffers;

namespace MailMesh.Mailbox.Imap;

/// <summary>What <see cref="ImapCommandReader.TryRead"/> found.</summary>
internal enum ImapReadStatus
{
    /// <summary>No complete command yet: read more bytes.</summary>
    NeedMore,

    /// <summary>
    /// A synchronizing literal was announced (RFC 9051 §4.3): send a continuation request ("+ ") and read on. The
    /// reader has already accepted its size.
    /// </summary>
    NeedContinuation,

    /// <summary>A complete command (<see cref="ImapCommandReader.Command"/>), literals inline.</summary>
    Command,

    /// <summary>
    /// An APPEND message literal of <see cref="ImapCommandReader.StreamLength"/> octets larger than the inline limit: the
    /// session copies exactly that many octets from the input to a sink (after a continuation request when
    /// <see cref="ImapCommandReader.StreamSynchronizing"/>), then calls <see cref="ImapCommandReader.StreamDone"/> and
    /// reads on. The command refers to it as a streamed literal (<see cref="ImapCommandReader.StreamedLiteralMarker"/>).
    /// </summary>
    StreamLiteral,

    /// <summary>
    /// The command exceeded a limit (line, command size, literal size) or was malformed at the framing level; it has been
    /// discarded to its end. Reply "tag BAD" (<see cref="ImapCommandReader.RejectedTag"/> when it could be read).
    /// </summary>
    TooLong,

    /// <summary>
    /// A literal larger than allowed: reply "tag NO [TOOBIG]" (RFC 9051 §7.1). A synchronizing one was refused without a
    /// continuation request, so the client does not send it (RFC 9051 §7.5); a non-synchronizing APPEND message over
    /// the maximum message size was skipped to the end of its command. The reader is ready for the next command.
    /// </summary>
    LiteralRefused,
}

/// <summary>
/// Frames IMAP commands from a byte stream in any split (RFC 9051 §2.2, §4.3): a command is one or more CRLF-terminated
/// lines, each but the last ending in a literal announcement <c>{n}</c> (synchronizing), <c>{n+}</c> or <c>{n-}</c>-style
/// non-synchronizing (RFC 7888) followed by exactly n octets. Every buffer has a cap: a line is at most
/// <see cref="ImapLimits.MaxLineLength"/>, a whole command (lines and inline literals) at most
/// <see cref="ImapLimits.MaxCommandSize"/>, a non-synchronizing literal at most 4096 octets (LITERAL-, RFC 7888 §4).
/// Only APPEND's message literal may be larger (up to <see cref="ImapLimits.MaxMessageSize"/>), and it is never
/// buffered here: the session streams it. Bytes over a limit are consumed and dropped as they come (the rest of the
/// command, including the octets of its literals, is skipped), so memory stays bounded whatever a client sends.
/// </summary>
internal sealed class ImapCommandReader
{
    /// <summary>Stands in the command bytes for a streamed literal: NUL cannot appear in a command outside a literal.</summary>
    public const byte StreamedLiteralMarker = 0;

    /// <summary>RFC 7888 §4: LITERAL- allows non-synchronizing literals up to 4096 octets.</summary>
    public const int MaxNonSynchronizingLiteral = 4096;

    private readonly ImapLimits _limits;
    private readonly ArrayBufferWriter<byte> _command = new(256);
    private long _literalRemaining;
    private bool _discarding;
    private bool _tooBig;
    private string? _rejectedTag;

    public ImapCommandReader(ImapLimits limits)
    {
        _limits = limits;
    }

    /// <summary>The complete command after <see cref="ImapReadStatus.Command"/>; valid until the next call.</summary>
    public ReadOnlyMemory<byte> Command => _command.WrittenMemory;

    /// <summary>The size of the literal to stream after <see cref="ImapReadStatus.StreamLiteral"/>.</summary>
    public long StreamLength { get; private set; }

    /// <summary>Whether the literal to stream is synchronizing (the client waits for "+ ").</summary>
    public bool StreamSynchronizing { get; private set; }

    /// <summary>The tag of a command refused for a limit, when its first line held one.</summary>
    public string? RejectedTag => _rejectedTag;

    /// <summary>True while the reader is inside a command (some of it has been read).</summary>
    public bool InCommand => _command.WrittenCount > 0 || _literalRemaining > 0 || _discarding;

    /// <summary>Reads as far as the input allows; see <see cref="ImapReadStatus"/> for what each result asks of the caller.</summary>
    public ImapReadStatus TryRead(ref SequenceReader<byte> reader)
    {
        if (_command.WrittenCount == 0 && !_discarding && _literalRemaining == 0)
        {
            _rejectedTag = null;
        }

        while (true)
        {
            if (_literalRemaining > 0)
            {
                var take = (int)Math.Min(_literalRemaining, reader.Remaining);
                if (take == 0)
                {
                    return ImapReadStatus.NeedMore;
                }

                if (!_discarding)
                {
                    reader.UnreadSequence.Slice(0, take).CopyTo(_command.GetSpan(take));
                    _command.Advance(take);
                }

                reader.Advance(take);
                _literalRemaining -= take;
                continue;
            }

            // A line: at most MaxLineLength octets including its CRLF, and within what is left of the command budget.
            var unread = reader.UnreadSequence;
            var budget = _discarding ? _limits.MaxLineLength : Math.Min(_limits.MaxLineLength, _limits.MaxCommandSize - _command.WrittenCount);
            var window = unread.Length > budget ? unread.Slice(0, budget) : unread;
            var lf = window.PositionOf((byte)'\n');
            if (lf is null)
            {
                if (unread.Length < budget)
                {
                    return ImapReadStatus.NeedMore;
                }

                // Too long: drop it up to its end. The rest of the command may still follow (its literals announced on
                // this line are lost with it, so the best we can do is skip to the next LF and report).
                CaptureTag(window);
                if (!reader.TryAdvanceTo((byte)'\n', advancePastDelimiter: true))
                {
                    reader.AdvanceToEnd();
                    _discarding = true;
                    _command.ResetWrittenCount();
                    return ImapReadStatus.NeedMore;
                }

                return Rejected();
            }

            var withLf = unread.Slice(0, unread.GetPosition(1, lf.Value));
            reader.Advance(withLf.Length);
            var line = withLf.Slice(0, withLf.Length - 1);
            if (!line.IsEmpty && Last(line) == '\r')
            {
                line = line.Slice(0, line.Length - 1);
            }

            if (_command.WrittenCount == 0 && !_discarding)
            {
                CaptureTag(line);
            }

            var literal = LiteralAnnouncement(line, out var announcementLength, out var synchronizing, out var size);
            if (_discarding)
            {
                if (literal == LiteralKind.Valid && !synchronizing)
                {
                    _literalRemaining = size;
                    continue;
                }

                // A synchronizing literal in a discarded command is never sent (we do not ask for it): the command ends.
                return Rejected();
            }

            if (literal == LiteralKind.Malformed)
            {
                // "{" digits "}" that is not a number we can hold.
                _discarding = true;
                return Rejected();
            }

            if (literal == LiteralKind.None)
            {
                Append(line);
                Append("\r\n"u8);
                return ImapReadStatus.Command;
            }

            if (!synchronizing && size > MaxNonSynchronizingLiteral && !IsAppend(line))
            {
                // RFC 7888 §4: a non-synchronizing literal over 4096 octets is refused with BAD; its octets are skipped.
                _discarding = true;
                _literalRemaining = size;
                continue;
            }

            if (IsAppend(_command.WrittenCount == 0 ? line : new ReadOnlySequence<byte>(_command.WrittenMemory)) && size > _limits.MaxInlineLiteral)
            {
                if (size > _limits.MaxMessageSize)
                {
                    if (RefuseLiteral(synchronizing, size, tooBig: true) is { } refused)
                    {
                        return refused;
                    }

                    continue;
                }

                // APPEND's message: the session streams it; the command keeps a marker in its place.
                Append(line.Slice(0, line.Length - announcementLength));
                Span<byte> marker = [StreamedLiteralMarker];
                Append(marker);
                StreamLength = size;
                StreamSynchronizing = synchronizing;
                return ImapReadStatus.StreamLiteral;
            }

            if (_command.WrittenCount + line.Length + 2 + size > _limits.MaxCommandSize)
            {
                if (RefuseLiteral(synchronizing, size, tooBig: false) is { } refused)
                {
                    return refused;
                }

                continue;
            }

            Append(line);
            Append("\r\n"u8);
            _literalRemaining = size;
            if (synchronizing && size > 0)
            {
                return ImapReadStatus.NeedContinuation;
            }
        }
    }

    /// <summary>After the session streamed the literal: the command continues with the rest of its line.</summary>
    public void StreamDone()
    {
        StreamLength = 0;
    }

    /// <summary>Forgets the command just returned (call after handling <see cref="ImapReadStatus.Command"/>).</summary>
    public void Reset()
    {
        _command.ResetWrittenCount();
        _literalRemaining = 0;
        _discarding = false;
        _tooBig = false;
    }

    /// <summary>Refuses a literal: at once when synchronizing, else by skipping its octets (null: read on), then
    /// answered TOOBIG when <paramref name="tooBig"/> (an APPEND message over the maximum) or BAD (a command over its budget).</summary>
    private ImapReadStatus? RefuseLiteral(bool synchronizing, long size, bool tooBig)
    {
        if (synchronizing)
        {
            // The client waits for "+ " before sending: refusing costs nothing to read (RFC 9051 §7.5).
            _command.ResetWrittenCount();
            return ImapReadStatus.LiteralRefused;
        }

        _discarding = true;
        _tooBig = tooBig;
        _literalRemaining = size;
        _command.ResetWrittenCount();
        return null;
    }

    private ImapReadStatus Rejected()
    {
        var status = _tooBig ? ImapReadStatus.LiteralRefused : ImapReadStatus.TooLong;
        _tooBig = false;
        _discarding = false;
        _literalRemaining = 0;
        _command.ResetWrittenCount();
        return status;
    }

    private void CaptureTag(in ReadOnlySequence<byte> line)
    {
        if (_rejectedTag is not null || _command.WrittenCount > 0)
        {
            return;
        }

        var head = line.Length > 64 ? line.Slice(0, 64) : line;
        Span<byte> bytes = stackalloc byte[(int)head.Length];
        head.CopyTo(bytes);
        var end = bytes.IndexOf((byte)' ');
        var tag = end < 0 ? bytes : bytes[..end];
        if (tag.Length > 0 && ImapSyntax.IsTag(tag))
        {
            _rejectedTag = System.Text.Encoding.ASCII.GetString(tag);
        }
    }

    private static bool IsAppend(in ReadOnlySequence<byte> firstLine)
    {
        // tag SP "APPEND" SP ... (RFC 9051 §6.3.12); the tag is an atom without '+'.
        var head = firstLine.Length > 80 ? firstLine.Slice(0, 80) : firstLine;
        Span<byte> bytes = stackalloc byte[(int)head.Length];
        head.CopyTo(bytes);
        var space = bytes.IndexOf((byte)' ');
        return space > 0 && bytes.Length > space + 7
            && System.Text.Ascii.EqualsIgnoreCase(bytes.Slice(space + 1, 6), "APPEND"u8) && bytes[space + 7] == ' ';
    }

    private enum LiteralKind
    {
        None,
        Valid,
        Malformed,
    }

    /// <summary>RFC 9051 §4.3 / RFC 7888: a line announcing a literal ends in "{" number ["+"] "}".</summary>
    private static LiteralKind LiteralAnnouncement(in ReadOnlySequence<byte> line, out int length, out bool synchronizing, out long size)
    {
        length = 0;
        synchronizing = true;
        size = 0;
        if (line.IsEmpty || Last(line) != '}')
        {
            return LiteralKind.None;
        }

        var tail = line.Length > 24 ? line.Slice(line.Length - 24) : line;
        Span<byte> bytes = stackalloc byte[(int)tail.Length];
        tail.CopyTo(bytes);
        var open = bytes.LastIndexOf((byte)'{');
        if (open < 0)
        {
            return LiteralKind.None;
        }

        var inner = bytes[(open + 1)..^1];
        if (inner.Length > 0 && inner[^1] == '+')
        {
            synchronizing = false;
            inner = inner[..^1];
        }

        if (inner.Length == 0 || inner.ContainsAnyExceptInRange((byte)'0', (byte)'9'))
        {
            // "{abc}" is not a literal announcement; leave it to the parser (which will say BAD).
            return LiteralKind.None;
        }

        if (inner.Length > 12)
        {
            return LiteralKind.Malformed;
        }

        foreach (var digit in inner)
        {
            size = (size * 10) + (digit - '0');
        }

        length = bytes.Length - open;
        return LiteralKind.Valid;
    }

    private void Append(in ReadOnlySequence<byte> bytes)
    {
        foreach (var segment in bytes)
        {
            Append(segment.Span);
        }
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(_command.GetSpan(bytes.Length));
        _command.Advance(bytes.Length);
    }

    private static byte Last(in ReadOnlySequence<byte> sequence) =>
        sequence.IsSingleSegment ? sequence.FirstSpan[^1] : sequence.Slice(sequence.Length - 1).FirstSpan[0];
}

/// <summary>The framing limits of an IMAP session (from the Mailbox protocol options).</summary>
internal sealed record ImapLimits(int MaxLineLength, int MaxCommandSize, int MaxInlineLiteral, long MaxMessageSize)
{
    /// <summary>Dovecot's defaults: 64 KiB lines (imap_max_line_length), 35 MiB messages.</summary>
    public static ImapLimits Default { get; } = new(65536, 65536, 65536, 36_700_160);
}
