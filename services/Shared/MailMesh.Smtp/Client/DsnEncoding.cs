using System.Buffers;
using System.Globalization;
using System.Text;

namespace MailMesh.Smtp.Client;

/// <summary>
/// Puts stored RFC 3461 values back on the wire. The spool keeps ENVID decoded and ORCPT as "addr-type;decoded-address"
/// (what <see cref="MailParameters"/> and <see cref="RcptParameters"/> produce); a relay must send them re-encoded,
/// byte for byte the same value the originator meant (RFC 3461 §4.2: ORCPT is passed on unchanged).
/// </summary>
public static class DsnEncoding
{
    private static readonly SearchValues<char> HexDigits = SearchValues.Create("0123456789ABCDEFabcdef");

    /// <summary>RFC 3461 §4.4: ENVID=xtext.</summary>
    public static string EnvelopeId(string envelopeId)
    {
        ArgumentNullException.ThrowIfNull(envelopeId);
        return EncodeXtext(envelopeId);
    }

    /// <summary>
    /// RFC 3461 §4.2: ORCPT=addr-type ";" xtext. An "utf-8" address (RFC 6533 §3), or an "rfc822" one that is not
    /// ASCII, is sent as "utf-8;" utf-8-addr-xtext, with every non-ASCII character and every character outside
    /// QCHARxtext written as "\x{HEX}" (EmbeddedUnicodeChar), which any DSN-capable server accepts.
    /// </summary>
    public static string OriginalRecipient(string stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        var semicolon = stored.IndexOf(';', StringComparison.Ordinal);
        if (semicolon <= 0)
        {
            // Not "type;address": treat the whole value as an RFC 822 address.
            return OriginalRecipient("rfc822;" + stored);
        }

        var type = stored[..semicolon];
        var address = stored[(semicolon + 1)..];
        if (type.Equals("utf-8", StringComparison.OrdinalIgnoreCase))
        {
            // Already in utf-8-addr form: its "\x{HEX}" escapes stand (RFC 6533 §3); the rest is made safe.
            return "utf-8;" + EncodeUtf8AddrXtext(address, keepEscapes: true);
        }

        if (!Ascii.IsValid(address))
        {
            return "utf-8;" + EncodeUtf8AddrXtext(address, keepEscapes: false);
        }

        return type + ";" + EncodeXtext(address);
    }

    /// <summary>
    /// RFC 3461 §4: xtext = *( xchar / hexchar ); xchar is "!" through "~" except "+" and "="; everything else is
    /// "+" and two upper-case hex digits. Non-ASCII text is encoded as its UTF-8 octets.
    /// </summary>
    public static string EncodeXtext(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var builder = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            if (b is < 33 or > 126 or (byte)'+' or (byte)'=')
            {
                builder.Append('+').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append((char)b);
            }
        }

        return builder.ToString();
    }

    // RFC 6533 §3: utf-8-addr-xtext = 1*(QCHARxtext / EmbeddedUnicodeChar); QCHARxtext = %x21-2a / %x2c-3c / %x3e-5b /
    // %x5d-7e (printable ASCII except "+", "=" and "\"); EmbeddedUnicodeChar = "\x{" HEXPOINT "}".
    private static string EncodeUtf8AddrXtext(string value, bool keepEscapes)
    {
        var builder = new StringBuilder(value.Length);
        var escapeEnd = -1;
        var index = 0;
        foreach (var rune in value.EnumerateRunes())
        {
            var v = rune.Value;
            var position = index;
            index += rune.Utf16SequenceLength;
            if (keepEscapes && v == '\\' && IsEmbeddedUnicodeChar(value, position, out var length))
            {
                escapeEnd = position + length;
            }

            if (position < escapeEnd || (v is >= 0x21 and <= 0x7E && v != '+' && v != '=' && v != '\\'))
            {
                builder.Append((char)v);
            }
            else
            {
                builder.Append("\\x{").Append(v.ToString("X2", CultureInfo.InvariantCulture)).Append('}');
            }
        }

        return builder.ToString();
    }

    // EmbeddedUnicodeChar = %x5C.78 "{" HEXPOINT "}" (RFC 6533 §3), HEXPOINT being 2 to 6 hex digits.
    private static bool IsEmbeddedUnicodeChar(string value, int start, out int length)
    {
        length = 0;
        if (start + 4 >= value.Length || value[start + 1] != 'x' || value[start + 2] != '{')
        {
            return false;
        }

        var close = value.IndexOf('}', start + 3);
        var digits = close - (start + 3);
        if (close < 0 || digits is < 2 or > 6 || value.AsSpan(start + 3, digits).ContainsAnyExcept(HexDigits))
        {
            return false;
        }

        length = close - start + 1;
        return true;
    }
}
