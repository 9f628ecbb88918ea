using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace MailMesh.Mailbox.Imap;

/// <summary>
/// Writes IMAP responses (RFC 9051 §7) into a buffer: atoms, numbers, NIL, strings as quoted strings when they can be
/// (RFC 9051 §4.3: no CR, LF or NUL; "\" and DQUOTE escaped; 8-bit only once UTF8=ACCEPT is enabled, RFC 6855) and as
/// literals otherwise. Message content is written by the session as literals from the store's stream.
/// </summary>
internal sealed class ImapWriter(IBufferWriter<byte> output)
{
    /// <summary>Longer strings go as literals: quoting costs a scan and clients handle literals anyway.</summary>
    private const int MaxQuoted = 1024;

    /// <summary>Whether 8-bit text may go in quoted strings (UTF8=ACCEPT enabled, RFC 6855 §3).</summary>
    public bool Utf8 { get; set; }

    public ImapWriter Raw(string ascii)
    {
        var span = output.GetSpan(ascii.Length);
        var written = Encoding.ASCII.GetBytes(ascii, span);
        output.Advance(written);
        return this;
    }

    public ImapWriter Raw(ReadOnlySpan<byte> bytes)
    {
        output.Write(bytes);
        return this;
    }

    public ImapWriter Number(long value)
    {
        var span = output.GetSpan(20);
        Utf8Formatter.TryFormat(value, span, out var written);
        output.Advance(written);
        return this;
    }

    public ImapWriter Sp() => Raw(" "u8);

    public ImapWriter Crlf() => Raw("\r\n"u8);

    public ImapWriter Nil() => Raw("NIL"u8);

    /// <summary>nstring: NIL for null, else a string.</summary>
    public ImapWriter NString(string? value) => value is null ? Nil() : String(value);

    /// <summary>A string: quoted when it can be, a literal otherwise.</summary>
    public ImapWriter String(string value)
    {
        if (CanQuote(value))
        {
            var bytes = Encoding.UTF8.GetBytes(value);
            var span = output.GetSpan((bytes.Length * 2) + 2);
            var n = 0;
            span[n++] = (byte)'"';
            foreach (var b in bytes)
            {
                if (b is (byte)'"' or (byte)'\\')
                {
                    span[n++] = (byte)'\\';
                }

                span[n++] = b;
            }

            span[n++] = (byte)'"';
            output.Advance(n);
            return this;
        }

        return Literal(Encoding.UTF8.GetBytes(value));
    }

    /// <summary>An astring: a bare atom when it is one (mailbox names in LIST look better bare), else a string.</summary>
    public ImapWriter AString(string value)
    {
        if (value.Length > 0 && value.Length < MaxQuoted && value.All(c => c < 0x80 && ImapSyntax.IsAStringChar((byte)c))
            && !value.Equals("NIL", StringComparison.OrdinalIgnoreCase))
        {
            return Raw(value);
        }

        return String(value);
    }

    /// <summary>A literal: "{n}" CRLF and the octets.</summary>
    public ImapWriter Literal(ReadOnlySpan<byte> bytes)
    {
        LiteralHeader(bytes.Length);
        output.Write(bytes);
        return this;
    }

    public ImapWriter LiteralHeader(long length)
    {
        Raw("{"u8).Number(length).Raw("}\r\n"u8);
        return this;
    }

    /// <summary>A date-time in the IMAP form: "02-Dec-2026 03:46:27 +0000" (RFC 9051 §9).</summary>
    public ImapWriter DateTime(DateTimeOffset value)
    {
        var offset = value.Offset;
        var sign = offset < TimeSpan.Zero ? '-' : '+';
        var abs = offset.Duration();
        return Raw("\"" + value.ToString("dd-MMM-yyyy HH:mm:ss ", CultureInfo.InvariantCulture)
            + sign + abs.Hours.ToString("00", CultureInfo.InvariantCulture) + abs.Minutes.ToString("00", CultureInfo.InvariantCulture) + "\"");
    }

    private bool CanQuote(string value)
    {
        if (value.Length > MaxQuoted)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (c is '\r' or '\n' or '\0' || (c >= 0x80 && !Utf8))
            {
                return false;
            }
        }

        return true;
    }
}
