using System.Buffers;
using System.Buffers.Text;
using System.Text;
using MailMesh.Ingress.Memory;

namespace MailMesh.Ingress.Http;

/// <summary>
/// A JSON string as it is in the request body: the octets between its quotes, escapes (RFC 8259 §7) not yet resolved.
/// Large values (text, html, base64 attachments) stay here and are decoded in small pieces while the message is
/// composed, so a 20 MB attachment is never a 53 MB .NET string, a 20 MB array and a MimeKit copy of it.
/// </summary>
internal readonly record struct JsonText(ReadOnlyMemory<byte> Raw, bool Escaped)
{
    public bool IsEmpty => Raw.IsEmpty;

    /// <summary>
    /// Checks that the text is valid Unicode and measures it as <see cref="OpenCanonicalText"/> will produce it
    /// (UTF-8, every line ending CRLF). Costs CPU only: the text is walked in 4 KiB pieces.
    /// </summary>
    public bool TryMeasureText(out long canonicalLength)
    {
        using var stream = OpenCanonicalText(-1);
        var decoder = new UTF8Encoding(false, throwOnInvalidBytes: true).GetDecoder();
        var bytes = new byte[4096];
        var chars = new char[4096];
        canonicalLength = 0;
        try
        {
            int read;
            while ((read = stream.Read(bytes)) > 0)
            {
                decoder.GetChars(bytes, 0, read, chars, 0, flush: false);
                canonicalLength += read;
            }

            decoder.GetChars(bytes, 0, 0, chars, 0, flush: true);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        return !stream.Invalid;
    }

    /// <summary>Checks that the value is base64 (RFC 4648 §4; white space ignored, as Convert does) and measures the
    /// decoded octets.</summary>
    public bool TryMeasureBase64(out long decodedLength)
    {
        using var stream = OpenBase64(-1);
        var scratch = new byte[4096];
        decodedLength = 0;
        int read;
        while ((read = stream.Read(scratch)) > 0)
        {
            decodedLength += read;
        }

        return !stream.Invalid;
    }

    /// <summary>The text unescaped to UTF-8 with CRLF line ends (RFC 2046 §4.1.1 canonical form); <paramref name="length"/>
    /// from <see cref="TryMeasureText"/>.</summary>
    public JsonTextStream OpenCanonicalText(long length) => new(new JsonUnescaper(Raw, Escaped), canonical: true, length);

    /// <summary>The octets the base64 value encodes; <paramref name="length"/> from <see cref="TryMeasureBase64"/>.</summary>
    public JsonTextStream OpenBase64(long length) => new(new JsonUnescaper(Raw, Escaped), canonical: false, length);
}

/// <summary>Resolves the escapes of a JSON string (RFC 8259 §7) into UTF-8, piece by piece.</summary>
internal sealed class JsonUnescaper(ReadOnlyMemory<byte> raw, bool escaped)
{
    private readonly byte[] _pending = new byte[4];
    private int _position;
    private int _pendingStart;
    private int _pendingCount;

    /// <summary>An escaped lone surrogate was met (written as U+FFFD).</summary>
    public bool Invalid { get; private set; }

    public void Reset()
    {
        _position = 0;
        _pendingCount = 0;
        Invalid = false;
    }

    public int Read(Span<byte> destination)
    {
        var written = 0;
        while (_pendingCount > 0 && written < destination.Length)
        {
            destination[written++] = _pending[_pendingStart++];
            _pendingCount--;
        }

        var span = raw.Span;
        Span<byte> utf8 = stackalloc byte[4];
        while (written < destination.Length && _position < span.Length)
        {
            var rest = span[_position..];
            var backslash = escaped ? rest.IndexOf((byte)'\\') : -1;
            var run = backslash < 0 ? rest.Length : backslash;
            if (run > 0)
            {
                var take = Math.Min(run, destination.Length - written);
                rest[..take].CopyTo(destination[written..]);
                written += take;
                _position += take;
                continue;
            }

            var count = Unescape(span, utf8);
            var fit = Math.Min(count, destination.Length - written);
            utf8[..fit].CopyTo(destination[written..]);
            written += fit;
            if (fit < count)
            {
                utf8[fit..count].CopyTo(_pending);
                _pendingStart = 0;
                _pendingCount = count - fit;
            }
        }

        return written;
    }

    /// <summary>One escape at the position (its syntax was checked by the reader) as UTF-8 octets.</summary>
    private int Unescape(ReadOnlySpan<byte> span, Span<byte> utf8)
    {
        var kind = span[_position + 1];
        _position += 2;
        byte simple = kind switch
        {
            (byte)'b' => 0x08,
            (byte)'f' => 0x0C,
            (byte)'n' => 0x0A,
            (byte)'r' => 0x0D,
            (byte)'t' => 0x09,
            (byte)'u' => 0,
            _ => kind, // \" \\ \/
        };
        if (kind != (byte)'u')
        {
            utf8[0] = simple;
            return 1;
        }

        var unit = Hex(span.Slice(_position, 4));
        _position += 4;
        Rune rune;
        if (char.IsHighSurrogate((char)unit) && _position + 6 <= span.Length && span[_position] == (byte)'\\' && span[_position + 1] == (byte)'u'
            && char.IsLowSurrogate((char)Hex(span.Slice(_position + 2, 4))))
        {
            rune = new Rune((char)unit, (char)Hex(span.Slice(_position + 2, 4)));
            _position += 6;
        }
        else if (char.IsSurrogate((char)unit))
        {
            Invalid = true;
            rune = Rune.ReplacementChar;
        }
        else
        {
            rune = new Rune(unit);
        }

        return rune.EncodeToUtf8(utf8);
    }

    private static int Hex(ReadOnlySpan<byte> digits)
    {
        var value = 0;
        foreach (var digit in digits)
        {
            value = (value << 4) | (digit <= '9' ? digit - '0' : (digit | 0x20) - 'a' + 10);
        }

        return value;
    }
}

/// <summary>
/// A read-only stream over a JSON string: its text with CRLF line ends, or the octets its base64 encodes. Seekable by
/// decoding again from the start (MimeKit reads a text part twice: to choose its transfer encoding, then to write it).
/// </summary>
internal sealed class JsonTextStream : ReadOnlyContentStream
{
    private const int PieceSize = 4096;

    private readonly JsonUnescaper _source;
    private readonly bool _canonical;
    private readonly long _length;
    private readonly byte[] _input = new byte[PieceSize];
    private int _inputStart;
    private int _inputEnd;
    private bool _sourceDone;
    private bool _pendingCr;
    private bool _owedLf;
    private readonly byte[] _decoded = new byte[PieceSize];
    private int _decodedStart;
    private int _decodedEnd;
    private bool _invalid;

    /// <param name="length">What the value decodes to (measured before); negative while it is being measured.</param>
    public JsonTextStream(JsonUnescaper source, bool canonical, long length)
    {
        _source = source;
        _canonical = canonical;
        _length = length;
    }

    /// <summary>The value is not what was asked for (an escaped lone surrogate; not base64).</summary>
    public bool Invalid => _invalid || _source.Invalid;

    public override long Length => _length >= 0 ? _length : throw new NotSupportedException("The length is being measured.");

    public override int Read(Span<byte> buffer)
    {
        var read = ReadPiece(buffer);
        Advance(read);
        return read;
    }

    /// <summary>Decodes again from the start up to <paramref name="target"/> when it is behind the position.</summary>
    protected override long MoveTo(long target)
    {
        var at = Position;
        if (target < at)
        {
            _source.Reset();
            _inputStart = _inputEnd = 0;
            _decodedStart = _decodedEnd = 0;
            _sourceDone = _pendingCr = _owedLf = _invalid = false;
            at = 0;
        }

        Span<byte> skip = stackalloc byte[512];
        int read;
        while (at < target && (read = ReadPiece(skip[..(int)Math.Min(skip.Length, target - at)])) > 0)
        {
            at += read;
        }

        return at;
    }

    private int ReadPiece(Span<byte> buffer) => _canonical ? ReadCanonical(buffer) : ReadBase64(buffer);

    /// <summary>RFC 2046 §4.1.1: CRLF, a bare CR and a bare LF all end a line and are written CRLF.</summary>
    private int ReadCanonical(Span<byte> buffer)
    {
        var written = 0;
        while (written < buffer.Length)
        {
            if (_owedLf)
            {
                buffer[written++] = (byte)'\n';
                _owedLf = false;
                continue;
            }

            if (_inputStart == _inputEnd)
            {
                _inputStart = 0;
                _inputEnd = _source.Read(_input);
                if (_inputEnd == 0)
                {
                    if (!_pendingCr)
                    {
                        break;
                    }

                    _pendingCr = false;
                    written = LineEnd(buffer, written);
                    continue;
                }
            }

            var octet = _input[_inputStart++];
            if (_pendingCr)
            {
                _pendingCr = false;
                if (octet != (byte)'\n')
                {
                    // A bare CR: its line ends here; the octet is read again after the CRLF.
                    _inputStart--;
                }

                written = LineEnd(buffer, written);
                continue;
            }

            if (octet == (byte)'\r')
            {
                _pendingCr = true;
            }
            else if (octet == (byte)'\n')
            {
                written = LineEnd(buffer, written);
            }
            else
            {
                buffer[written++] = octet;
            }
        }

        return written;
    }

    private int LineEnd(Span<byte> buffer, int written)
    {
        buffer[written++] = (byte)'\r';
        if (written < buffer.Length)
        {
            buffer[written++] = (byte)'\n';
        }
        else
        {
            _owedLf = true;
        }

        return written;
    }

    /// <summary>RFC 4648 §4, decoded a piece at a time. White space is skipped (as <see cref="Convert.FromBase64String"/>
    /// does); padding may only end the value.</summary>
    private int ReadBase64(Span<byte> buffer)
    {
        var written = 0;
        while (written < buffer.Length)
        {
            if (_decodedStart < _decodedEnd)
            {
                var take = Math.Min(buffer.Length - written, _decodedEnd - _decodedStart);
                _decoded.AsSpan(_decodedStart, take).CopyTo(buffer[written..]);
                _decodedStart += take;
                written += take;
                continue;
            }

            if (_sourceDone || _invalid)
            {
                break;
            }

            DecodePiece();
        }

        return written;
    }

    private void DecodePiece()
    {
        // _input[0.._inputEnd) holds what was not decoded yet: less than a block, or a padded block (which may only be
        // followed by white space).
        var carried = _inputEnd;
        var read = _source.Read(_input.AsSpan(carried));
        var final = read == 0;
        var count = carried;
        for (var i = carried; i < carried + read; i++)
        {
            var octet = _input[i];
            if (octet is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
            {
                _input[count++] = octet;
            }
        }

        var decodeLength = count;
        if (!final)
        {
            var padding = _input.AsSpan(0, count).IndexOf((byte)'=');
            decodeLength = (padding < 0 ? count : padding) / 4 * 4;
            if (padding >= 0 && count - decodeLength > 4)
            {
                // Something other than white space follows a padded block: not base64.
                _invalid = true;
                return;
            }
        }

        var status = Base64.DecodeFromUtf8(_input.AsSpan(0, decodeLength), _decoded, out var consumed, out var decoded, isFinalBlock: final);
        if (status == OperationStatus.InvalidData || (final && status != OperationStatus.Done) || consumed != decodeLength)
        {
            _invalid = true;
            return;
        }

        _decodedStart = 0;
        _decodedEnd = decoded;
        _input.AsSpan(decodeLength, count - decodeLength).CopyTo(_input);
        _inputEnd = count - decodeLength;
        _sourceDone = final;
    }
}
