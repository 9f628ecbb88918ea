using System.Buffers;
using System.Security.Cryptography;

namespace MailMesh.Delivery.Dkim;

/// <summary>
/// The "relaxed" canonicalisation algorithms of RFC 6376 §3.4.2 (header) and §3.4.4 (body), over the message's octets
/// as stored and sent: nothing is parsed into objects or copied, so a 35 MB body is hashed straight from its memory map.
/// </summary>
internal static class DkimCanonicalization
{
    private const byte Cr = (byte)'\r';
    private const byte Lf = (byte)'\n';
    private const byte Sp = (byte)' ';
    private const byte Tab = (byte)'\t';

    /// <summary>SHA-256 of the relaxed canonical body (the bh= tag, RFC 6376 §3.7).</summary>
    public static byte[] RelaxedBodyHash(ReadOnlySpan<byte> body)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var writer = new RelaxedBodyWriter(hash);
        writer.Write(body);
        writer.Complete();
        return hash.GetHashAndReset();
    }

    /// <summary>
    /// Appends one header field (name, colon, value with its folding, the final CRLF optional) in relaxed canonical form
    /// (RFC 6376 §3.4.2): name lower-cased, unfolded, runs of WSP as one SP, no WSP around the colon or at the end, then
    /// CRLF when <paramref name="crlf"/>.
    /// </summary>
    public static void AppendRelaxedHeader(ReadOnlySpan<byte> field, ArrayBufferWriter<byte> output, bool crlf = true)
    {
        var colon = field.IndexOf((byte)':');
        if (colon < 0)
        {
            throw new ArgumentException("A header field needs a colon.", nameof(field));
        }

        var name = field[..colon].TrimEnd(" \t"u8);
        var span = output.GetSpan(name.Length + 1);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            span[i] = c is >= (byte)'A' and <= (byte)'Z' ? (byte)(c | 0x20) : c;
        }

        span[name.Length] = (byte)':';
        output.Advance(name.Length + 1);

        var value = field[(colon + 1)..];
        var pendingSpace = false;
        var started = false;
        foreach (var c in value)
        {
            if (c is Cr or Lf)
            {
                // Unfolding: the CRLF goes; the WSP after it stays (and is collapsed below).
                continue;
            }

            if (c is Sp or Tab)
            {
                pendingSpace = started;
                continue;
            }

            if (pendingSpace)
            {
                output.Write(" "u8);
                pendingSpace = false;
            }

            output.GetSpan(1)[0] = c;
            output.Advance(1);
            started = true;
        }

        if (crlf)
        {
            output.Write("\r\n"u8);
        }
    }

    /// <summary>
    /// RFC 6376 §3.4.4 as a stream: content may come in chunks split at any octet. Runs of WSP become one SP, WSP at the
    /// end of a line goes, empty lines at the end of the body go, and a non-empty body ends with CRLF. Lines end at CRLF
    /// only (a bare CR or LF is an ordinary octet, as in the RFC).
    /// </summary>
    internal sealed class RelaxedBodyWriter(IncrementalHash hash)
    {
        private static readonly SearchValues<byte> Specials = SearchValues.Create(" \t\r"u8);

        private readonly byte[] _buffer = new byte[8192];
        private int _used;
        private bool _pendingSpace;
        private bool _pendingCr;
        private bool _lineStarted;
        private long _emptyLines;

        public void Write(ReadOnlySpan<byte> content)
        {
            while (!content.IsEmpty)
            {
                if (_pendingCr)
                {
                    _pendingCr = false;
                    if (content[0] == Lf)
                    {
                        EndLine();
                        content = content[1..];
                        continue;
                    }

                    Content(Cr);
                }

                switch (content[0])
                {
                    case Cr:
                        _pendingCr = true;
                        content = content[1..];
                        break;
                    case Sp or Tab:
                        _pendingSpace = true;
                        content = content[1..];
                        break;
                    default:
                        // A run of ordinary octets goes to the hash as it is (vectorised search, one copy at most).
                        var run = content.IndexOfAny(Specials);
                        if (run < 0)
                        {
                            run = content.Length;
                        }

                        Run(content[..run]);
                        content = content[run..];
                        break;
                }
            }
        }

        public void Complete()
        {
            if (_pendingCr)
            {
                _pendingCr = false;
                Content(Cr);
            }

            if (_lineStarted)
            {
                // A non-empty last line without CRLF gets one.
                EndLine();
            }

            Flush();
        }

        private void Run(ReadOnlySpan<byte> run)
        {
            Content(run[0]);
            run = run[1..];
            if (run.Length > _buffer.Length - _used)
            {
                Flush();
                if (run.Length >= _buffer.Length)
                {
                    hash.AppendData(run);
                    return;
                }
            }

            run.CopyTo(_buffer.AsSpan(_used));
            _used += run.Length;
        }

        private void Content(byte c)
        {
            if (!_lineStarted)
            {
                // Empty lines are only kept when something follows them.
                for (; _emptyLines > 0; _emptyLines--)
                {
                    Put(Cr);
                    Put(Lf);
                }

                _lineStarted = true;
            }

            if (_pendingSpace)
            {
                Put(Sp);
                _pendingSpace = false;
            }

            Put(c);
        }

        private void EndLine()
        {
            _pendingSpace = false;
            if (_lineStarted)
            {
                Put(Cr);
                Put(Lf);
                _lineStarted = false;
            }
            else
            {
                _emptyLines++;
            }
        }

        private void Put(byte c)
        {
            if (_used == _buffer.Length)
            {
                Flush();
            }

            _buffer[_used++] = c;
        }

        private void Flush()
        {
            hash.AppendData(_buffer, 0, _used);
            _used = 0;
        }
    }
}
