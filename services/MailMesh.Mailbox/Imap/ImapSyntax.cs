namespace MailMesh.Mailbox.Imap;

/// <summary>Character classes of the IMAP grammar (RFC 9051 §9).</summary>
internal static class ImapSyntax
{
    /// <summary>ATOM-CHAR: any CHAR except atom-specials ("(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]").</summary>
    public static bool IsAtomChar(byte b) =>
        b is > 0x20 and < 0x7F and not ((byte)'(' or (byte)')' or (byte)'{' or (byte)'%' or (byte)'*' or (byte)'"' or (byte)'\\' or (byte)']');

    /// <summary>ASTRING-CHAR = ATOM-CHAR / resp-specials.</summary>
    public static bool IsAStringChar(byte b) => IsAtomChar(b) || b == ']';

    /// <summary>list-char = ATOM-CHAR / list-wildcards / resp-specials.</summary>
    public static bool IsListChar(byte b) => IsAStringChar(b) || b is (byte)'%' or (byte)'*';

    /// <summary>tag = 1*&lt;any ASTRING-CHAR except "+"&gt;.</summary>
    public static bool IsTag(ReadOnlySpan<byte> tag)
    {
        if (tag.IsEmpty)
        {
            return false;
        }

        foreach (var b in tag)
        {
            if (!IsAStringChar(b) || b == '+')
            {
                return false;
            }
        }

        return true;
    }
}
