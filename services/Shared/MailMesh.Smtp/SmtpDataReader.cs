using System.Buffers;

namespace MailMesh.Smtp;

/// <summary>What the DATA reader does with a bare CR or bare LF in the content.</summary>
public enum BareLineEndingHandling
{
    /// <summary>
    /// Default. Read to the real CRLF.CRLF and refuse the message (554 5.6.0). A bare line ending is how SMTP smuggling
    /// works: a server that takes "\n.\n" or "\r.\r" as the end of data lets a sender append a second, forged message
    /// that the next hop sees as one (CVE-2023-51764/51765/51766).
    /// </summary>
    Reject,

    /// <summary>
    /// Accept the message, replacing each bare CR or LF by CRLF. The end of data is still only a real CRLF.CRLF, and a
    /// dot that follows a replaced line ending is kept as data (it was not at the start of a CRLF-delimited line, so
    /// it was never dot-stuffed), so the stored content cannot carry a smuggled end of data to the next hop.
    /// </summary>
    Normalize,
}

/// <summary>
/// Reads the content of DATA (RFC 5321 §4.1.1.4) from a byte stream split in any way: the end is only
/// CRLF "." CRLF (the first CRLF may be the one that ended the DATA command), leading dots are unstuffed
/// (§4.5.2), and the content is written out with CRLF line ends exactly as received otherwise. Limits are enforced
/// while reading, never by buffering: once the message is known to be refused, the rest is read and discarded so
/// the session stays in step with the client, and <see cref="Error"/> gives the reply.
/// </summary>
public sealed class SmtpDataReader
{
    private readonly long _maxMessageSize;
    private readonly int _maxLineLength;
    private readonly BareLineEndingHandling _bareLineEndings;
    private State _state;
    private long _lineLength;

    /// <param name="maxMessageSize">The largest content accepted, in octets after dot-unstuffing (RFC 1870 SIZE).</param>
    /// <param name="maxLineLength">The longest content line accepted, including CRLF (RFC 5321 §4.5.3.1.6 sets a floor of 1000).</param>
    public SmtpDataReader(long maxMessageSize, int maxLineLength, BareLineEndingHandling bareLineEndings = BareLineEndingHandling.Reject)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxMessageSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineLength, 3);
        _maxMessageSize = maxMessageSize;
        _maxLineLength = maxLineLength;
        _bareLineEndings = bareLineEndings;
    }

    private enum State
    {
        /// <summary>At the start of a line that follows a CRLF: a dot here is stuffing or the end of data.</summary>
        LineStart,

        /// <summary>At the start of a line that follows a replaced bare line ending: a dot here is data.</summary>
        LineStartAfterBare,
        InLine,
        Cr,
        Dot,
        DotCr,
    }

    /// <summary>Content octets seen, after dot-unstuffing (counted even when no longer written).</summary>
    public long Size { get; private set; }

    public bool SizeExceeded { get; private set; }

    /// <summary>A bare CR or LF was seen (refused in <see cref="BareLineEndingHandling.Reject"/> mode).</summary>
    public bool SawBareLineEnding { get; private set; }

    public bool LineTooLong { get; private set; }

    /// <summary>The content has octets above 127 (RFC 6152: needs BODY=8BITMIME to be relayed as is).</summary>
    public bool Has8BitData { get; private set; }

    /// <summary>True once the message is refused: the rest is read but no longer written.</summary>
    public bool IsRefused => SizeExceeded || LineTooLong || (SawBareLineEnding && _bareLineEndings == BareLineEndingHandling.Reject);

    /// <summary>The reply for a refused message, or null when the content is acceptable.</summary>
    public SmtpReply? Error =>
        SawBareLineEnding && _bareLineEndings == BareLineEndingHandling.Reject ? SmtpReplies.BareLineEndingInData
        : SizeExceeded ? SmtpReplies.MessageTooBig
        : LineTooLong ? SmtpReplies.DataLineTooLong
        : null;

    /// <summary>Prepares for the next message.</summary>
    public void Reset()
    {
        _state = State.LineStart;
        _lineLength = 0;
        Size = 0;
        SizeExceeded = false;
        SawBareLineEnding = false;
        LineTooLong = false;
        Has8BitData = false;
    }

    /// <summary>
    /// Consumes content from <paramref name="reader"/>, writing it to <paramref name="output"/> (if not null and the
    /// message is not refused). Returns true at the end of data, with the reader just past the final CRLF "." CRLF;
    /// returns false when all input was consumed and more is needed (partial terminators are kept as state).
    /// </summary>
    public bool TryRead(ref SequenceReader<byte> reader, IBufferWriter<byte>? output)
    {
        while (!reader.End)
        {
            var span = reader.UnreadSpan;
            var i = 0;
            while (i < span.Length)
            {
                switch (_state)
                {
                    case State.InLine:
                        {
                            var found = span[i..].IndexOfAny((byte)'\r', (byte)'\n');
                            var end = found < 0 ? span.Length : i + found;
                            if (end > i)
                            {
                                AddToLine(end - i);
                                Emit(span[i..end], output);
                                i = end;
                            }

                            if (i < span.Length)
                            {
                                if (span[i] == '\r')
                                {
                                    _state = State.Cr;
                                }
                                else
                                {
                                    BareLineEnding(output);
                                }

                                i++;
                            }

                            break;
                        }

                    case State.LineStart:
                    case State.LineStartAfterBare:
                        {
                            var b = span[i];
                            if (b == '.' && _state == State.LineStart)
                            {
                                _state = State.Dot;
                                i++;
                            }
                            else if (b == '\r')
                            {
                                _state = State.Cr;
                                i++;
                            }
                            else if (b == '\n')
                            {
                                BareLineEnding(output);
                                i++;
                            }
                            else
                            {
                                _state = State.InLine;
                            }

                            break;
                        }

                    case State.Cr:
                        if (span[i] == '\n')
                        {
                            Emit("\r\n"u8, output);
                            _lineLength = 0;
                            _state = State.LineStart;
                            i++;
                        }
                        else
                        {
                            // A CR not followed by LF: the byte after it is examined again as data.
                            BareLineEnding(output);
                        }

                        break;

                    case State.Dot:
                        if (span[i] == '\r')
                        {
                            _state = State.DotCr;
                            i++;
                        }
                        else if (span[i] == '\n')
                        {
                            // CRLF "." LF: a smuggling variant, never the end of data. As data it is a line holding one dot.
                            AddToLine(1);
                            Emit("."u8, output);
                            BareLineEnding(output);
                            i++;
                        }
                        else
                        {
                            // RFC 5321 §4.5.2: a leading dot followed by more text is removed (dot-unstuffing).
                            AddToLine(1);
                            _state = State.InLine;
                        }

                        break;

                    case State.DotCr:
                        if (span[i] == '\n')
                        {
                            // RFC 5321 §4.1.1.4: CRLF "." CRLF ends the mail data.
                            reader.Advance(i + 1);
                            _state = State.LineStart;
                            return true;
                        }

                        // CRLF "." CR followed by something else: a line holding one dot, ended by a bare CR.
                        AddToLine(1);
                        Emit("."u8, output);
                        BareLineEnding(output);
                        break;
                }
            }

            reader.Advance(span.Length);
        }

        return false;
    }

    private void BareLineEnding(IBufferWriter<byte>? output)
    {
        SawBareLineEnding = true;
        if (_bareLineEndings == BareLineEndingHandling.Normalize)
        {
            Emit("\r\n"u8, output);
        }

        _lineLength = 0;
        _state = State.LineStartAfterBare;
    }

    private void AddToLine(int count)
    {
        _lineLength += count;
        if (_lineLength + 2 > _maxLineLength)
        {
            LineTooLong = true;
        }
    }

    private void Emit(ReadOnlySpan<byte> data, IBufferWriter<byte>? output)
    {
        Size += data.Length;
        if (Size > _maxMessageSize)
        {
            SizeExceeded = true;
        }

        if (!Has8BitData && data.IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0)
        {
            Has8BitData = true;
        }

        if (output is not null && !IsRefused)
        {
            output.Write(data);
        }
    }
}
