using System.Buffers;
using System.Globalization;
using System.Text;
using MimeKit;

namespace MailMesh.Delivery.Dkim;

/// <summary>
/// Signs outgoing messages with DKIM (RFC 6376): one DKIM-Signature header field, relaxed/relaxed, made for the exact
/// octets Delivery sends and sent in front of them. The message itself is never changed: the field is a separate
/// prefix, so the stored message stays unsigned and every attempt signs it once (a retry never adds a second
/// signature). Keys come from <see cref="DkimOptions"/>; with none configured <see cref="IsEnabled"/> is false and the
/// caller skips signing entirely.
/// </summary>
/// <remarks>
/// MimeKit's own DkimSigner is not used for the signature: it hashes its re-serialisation of a parsed MimeMessage,
/// which for malformed or unusual MIME is not the octets on the wire, and parsing a 35 MB message per attempt costs
/// more than hashing it. Here the header fields are canonicalised from the stored octets and the body is hashed
/// straight from them (<see cref="DkimCanonicalization"/>); MimeKit parses only the From field's addresses.
/// </remarks>
internal sealed class MessageSigner
{
    /// <summary>
    /// The header fields signed when present (RFC 6376 §5.4.1's list, plus the MIME fields, Message-ID and the
    /// List-* fields of RFC 2369/2919/8058), in h= order.
    /// </summary>
    internal static readonly string[] SignedHeaders =
    [
        "from", "to", "subject", "date", "message-id", "reply-to", "cc", "sender", "in-reply-to", "references",
        "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
        "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc", "resent-message-id",
        "list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post", "list-owner", "list-archive",
    ];

    /// <summary>Listed once more than they occur (RFC 6376 §8.15): no From, To or Subject can be added after signing.</summary>
    internal static readonly string[] OversignedHeaders = ["from", "to", "subject"];

    private readonly DkimKeyRing _keys;
    private readonly TimeProvider _time;

    public MessageSigner(DkimKeyRing keys, TimeProvider time)
    {
        _keys = keys;
        _time = time;
    }

    public bool IsEnabled => _keys.HasSigningKeys;

    /// <summary>
    /// The DKIM-Signature header field (folded, ending in CRLF) to send in front of <paramref name="content"/>, or
    /// empty when nothing signs it: no key for its From domain, no single From domain, a header section DKIM cannot
    /// sign, or a signature of the same domain and selector already present.
    /// </summary>
    public SignResult Sign(ReadOnlySpan<byte> content)
    {
        var headers = HeaderFields.Parse(content);
        if (headers is null)
        {
            return SignResult.Unsigned("unparsable_header");
        }

        if (FromDomain(content, headers) is not { } domain)
        {
            return SignResult.Unsigned("no_from_domain");
        }

        if (_keys.For(domain) is not { } key)
        {
            return SignResult.Unsigned("no_key");
        }

        if (AlreadySigned(content, headers, key.Domain, key.Selector))
        {
            return SignResult.Unsigned("already_signed");
        }

        var bodyHash = DkimCanonicalization.RelaxedBodyHash(content[headers.BodyStart..]);
        return SignResult.Signed(Sign(content, headers, key, bodyHash, _time.GetUtcNow()), key.Domain, key.Selector);
    }

    /// <summary>Builds the field for the given body hash and time (tests pin both).</summary>
    internal static byte[] Sign(ReadOnlySpan<byte> content, HeaderFields headers, DkimSigningKey key, byte[] bodyHash, DateTimeOffset now) =>
        Sign(content, headers, key, bodyHash, now, "DKIM-Signature: v=1");

    /// <summary>
    /// Builds a DKIM-style signature field starting with <paramref name="fieldStart"/> (its name and first tag): the
    /// DKIM-Signature, or ARC-Message-Signature with its i= (RFC 8617 §4.1.2, the same tags and hashing).
    /// </summary>
    internal static byte[] Sign(ReadOnlySpan<byte> content, HeaderFields headers, DkimSigningKey key, byte[] bodyHash, DateTimeOffset now, string fieldStart)
    {
        // h=: every present field of the list, as often as it occurs; the oversigned ones once more.
        var names = new List<string>();
        foreach (var name in SignedHeaders)
        {
            var count = 0;
            foreach (var present in headers.Fields)
            {
                if (string.Equals(present.Name, name, StringComparison.OrdinalIgnoreCase))
                {
                    count++;
                }
            }

            if (OversignedHeaders.Contains(name))
            {
                count++;
            }

            for (var i = 0; i < count; i++)
            {
                names.Add(name);
            }
        }

        var field = new StringBuilder(fieldStart).Append("; a=").Append(key.AlgorithmName)
            .Append("; c=relaxed/relaxed; d=").Append(key.Domain)
            .Append("; s=").Append(key.Selector).Append(";\r\n\tt=")
            .Append(now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)).Append("; h=");
        var lineLength = "\tt=1234567890; h=".Length;
        for (var i = 0; i < names.Count; i++)
        {
            var part = i == 0 ? names[i] : ":" + names[i];
            if (lineLength + part.Length > 76)
            {
                // FWS is allowed around the colons of h= (RFC 6376 §3.5).
                field.Append(":\r\n\t").Append(names[i]);
                lineLength = 1 + names[i].Length;
            }
            else
            {
                field.Append(part);
                lineLength += part.Length;
            }
        }

        field.Append(";\r\n\tbh=").Append(Convert.ToBase64String(bodyHash)).Append(";\r\n\tb=");
        var unsigned = Encoding.ASCII.GetBytes(field.ToString());

        // RFC 6376 §3.7: the signed fields in h= order (each name takes the last instance not yet taken, §5.4.2; a name
        // with none left contributes nothing), then this field with an empty b= and no final CRLF.
        var data = new ArrayBufferWriter<byte>(1024);
        var used = new bool[headers.Fields.Count];
        foreach (var name in names)
        {
            for (var i = headers.Fields.Count - 1; i >= 0; i--)
            {
                if (!used[i] && string.Equals(headers.Fields[i].Name, name, StringComparison.OrdinalIgnoreCase))
                {
                    used[i] = true;
                    DkimCanonicalization.AppendRelaxedHeader(content.Slice(headers.Fields[i].Start, headers.Fields[i].Length), data);
                    break;
                }
            }
        }

        DkimCanonicalization.AppendRelaxedHeader(unsigned, data, crlf: false);
        var signature = Convert.ToBase64String(key.Sign(data.WrittenSpan));

        // b= folded into lines of 72 (FWS inside base64 is ignored by verifiers, RFC 6376 §3.5).
        for (var i = 0; i < signature.Length; i += 72)
        {
            field.Append(i == 0 ? string.Empty : "\r\n\t ").Append(signature.AsSpan(i, Math.Min(72, signature.Length - i)));
        }

        return Encoding.ASCII.GetBytes(field.Append("\r\n").ToString());
    }

    /// <summary>
    /// The domain of the RFC5322.From address, lower-case A-labels; null unless there is exactly one From field whose
    /// mailboxes all share one domain.
    /// </summary>
    internal static string? FromDomain(ReadOnlySpan<byte> content, HeaderFields headers)
    {
        HeaderField? from = null;
        foreach (var field in headers.Fields)
        {
            if (string.Equals(field.Name, "from", StringComparison.OrdinalIgnoreCase))
            {
                if (from is not null)
                {
                    return null;
                }

                from = field;
            }
        }

        if (from is null || !InternetAddressList.TryParse(HeaderFields.Value(content, from.Value), out var addresses))
        {
            return null;
        }

        string? domain = null;
        foreach (var mailbox in addresses.Mailboxes)
        {
            var normalised = Normalise(mailbox.Domain);
            if (normalised is null || (domain is not null && domain != normalised))
            {
                return null;
            }

            domain = normalised;
        }

        return domain;
    }

    private static string? Normalise(string? domain)
    {
        if (string.IsNullOrEmpty(domain))
        {
            return null;
        }

        try
        {
            return new IdnMapping().GetAscii(domain.TrimEnd('.')).ToLowerInvariant();
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>A DKIM-Signature with this d= and s= is already in the message (a message that came back to us).</summary>
    private static bool AlreadySigned(ReadOnlySpan<byte> content, HeaderFields headers, string domain, string selector)
    {
        foreach (var field in headers.Fields)
        {
            if (!string.Equals(field.Name, "dkim-signature", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            string? d = null, s = null;
            foreach (var tag in HeaderFields.Value(content, field).Split(';'))
            {
                var eq = tag.IndexOf('=', StringComparison.Ordinal);
                if (eq < 0)
                {
                    continue;
                }

                var name = tag[..eq].Trim();
                var value = string.Concat(tag[(eq + 1)..].Where(c => !char.IsWhiteSpace(c)));
                if (name == "d")
                {
                    d = value;
                }
                else if (name == "s")
                {
                    s = value;
                }
            }

            if (string.Equals(d, domain, StringComparison.OrdinalIgnoreCase) && string.Equals(s, selector, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>What <see cref="MessageSigner.Sign(ReadOnlySpan{byte})"/> did: the field to send first (empty when unsigned) and why not.</summary>
internal readonly record struct SignResult(ReadOnlyMemory<byte> Field, string? Domain, string? Selector, string Outcome)
{
    public static SignResult Unsigned(string why) => new(ReadOnlyMemory<byte>.Empty, null, null, why);

    public static SignResult Signed(byte[] field, string domain, string selector) => new(field, domain, selector, "signed");

    public bool IsSigned => !Field.IsEmpty;
}
