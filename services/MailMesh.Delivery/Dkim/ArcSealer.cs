using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery.Dkim;

/// <summary>
/// ARC sealing (RFC 8617) of mail MailMesh received from outside and sends on: a message whose header carries an
/// Authentication-Results field with MailMesh's authserv-id (stamped by Ingress) gets an ARC set, i.e.
/// ARC-Authentication-Results (our A-R results), ARC-Message-Signature and ARC-Seal, sent in front of its octets like
/// the DKIM-Signature (<see cref="MessageSigner"/>): the stored message is not changed, every attempt seals it once.
/// A local submission has no such field and is not sealed.
/// </summary>
/// <remarks>
/// MimeKit's ArcSigner is not used, for the reason MessageSigner gives for DkimSigner: it signs its re-serialisation of a
/// parsed MimeMessage, not the octets Delivery sends. The seal is made here over the stored octets with the same relaxed
/// canonicalisation. The chain validation status (cv=, RFC 8617 §5.1.1) is the arc= result Policy put in our
/// Authentication-Results when the message arrived: no earlier set gives cv=none; arc=pass gives cv=pass; any other
/// result gives cv=fail, whose seal covers only its own set (§5.1.1 step 4). A chain whose last seal already says
/// cv=fail, one at the 50-set limit (§4.2.1), and one whose arc= result is missing are left as they are.
/// </remarks>
internal sealed class ArcSealer
{
    private const int InstanceLimit = 50;

    private readonly DkimKeyRing _keys;
    private readonly TimeProvider _time;
    private readonly ArcSealOptions _options;
    private DkimSigningKey? _key;

    public ArcSealer(IOptions<DkimOptions> options, DkimKeyRing keys, TimeProvider time)
    {
        _options = options.Value.Arc;
        _keys = keys;
        _time = time;
    }

    public bool IsEnabled => _options.Enabled;

    private DkimSigningKey Key => _key ??= _keys.All.First(k =>
        string.Equals(k.Domain, _options.Domain, StringComparison.OrdinalIgnoreCase)
        && string.Equals(k.Selector, _options.Selector, StringComparison.OrdinalIgnoreCase));

    /// <summary>The ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results; folded, each ending in CRLF) to
    /// send in front of <paramref name="content"/>, or empty with the reason it is not sealed.</summary>
    public ArcSealResult Seal(ReadOnlySpan<byte> content) => Seal(content, Key, _options.AuthServId!, _time.GetUtcNow());

    internal static ArcSealResult Seal(ReadOnlySpan<byte> content, DkimSigningKey key, string authServId, DateTimeOffset now)
    {
        var headers = HeaderFields.Parse(content);
        if (headers is null)
        {
            return ArcSealResult.Unsealed("unparsable_header");
        }

        // The topmost Authentication-Results of ours: Ingress stamps one and removes any earlier one claiming our id.
        HeaderField? ours = null;
        var sets = new Dictionary<int, HeaderField?[]>();
        var broken = false;
        foreach (var field in headers.Fields)
        {
            var slot = field.Name.ToLowerInvariant() switch
            {
                "arc-authentication-results" => 0,
                "arc-message-signature" => 1,
                "arc-seal" => 2,
                _ => -1,
            };
            if (slot < 0)
            {
                if (ours is null && string.Equals(field.Name, "authentication-results", StringComparison.OrdinalIgnoreCase)
                    && string.Equals(AuthServIdOf(HeaderFields.Value(content, field)), authServId, StringComparison.OrdinalIgnoreCase))
                {
                    ours = field;
                }

                continue;
            }

            var instance = Instance(HeaderFields.Value(content, field));
            if (instance is < 1 or > InstanceLimit)
            {
                broken = true;
                continue;
            }

            var set = sets.TryGetValue(instance, out var found) ? found : sets[instance] = new HeaderField?[3];
            broken |= set[slot] is not null;
            set[slot] = field;
        }

        if (ours is null)
        {
            return ArcSealResult.Unsealed("not_forwarded");
        }

        var ourValue = HeaderFields.Value(content, ours.Value);
        var previous = sets.Count == 0 ? 0 : sets.Keys.Max();
        if (previous >= InstanceLimit)
        {
            return ArcSealResult.Unsealed("chain_limit");
        }

        string cv;
        if (previous == 0 && !broken)
        {
            cv = "none";
        }
        else
        {
            for (var i = 1; i <= previous; i++)
            {
                broken |= !sets.TryGetValue(i, out var set) || set.Any(f => f is null);
            }

            if (!broken && Tag(HeaderFields.Value(content, sets[previous][2]!.Value), "cv") == "fail")
            {
                return ArcSealResult.Unsealed("chain_failed");
            }

            if (ArcResult(ourValue) is not { } result)
            {
                return ArcSealResult.Unsealed("chain_unverified");
            }

            cv = !broken && result == "pass" ? "pass" : "fail";
        }

        var next = (previous + 1).ToString(CultureInfo.InvariantCulture);
        var seconds = now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);

        // ARC-Authentication-Results (RFC 8617 §4.1.1): i= and our Authentication-Results value, folding kept.
        var raw = content.Slice(ours.Value.Start, ours.Value.Length);
        var value = raw[(raw.IndexOf((byte)':') + 1)..].TrimStart(" \t"u8);
        byte[] aar = [.. Encoding.ASCII.GetBytes("ARC-Authentication-Results: i=" + next + "; "), .. value.ToArray()];

        // ARC-Message-Signature (§4.1.2): a DKIM signature with i= instead of v=, over the same octets.
        var bodyHash = DkimCanonicalization.RelaxedBodyHash(content[headers.BodyStart..]);
        var ams = MessageSigner.Sign(content, headers, key, bodyHash, now, "ARC-Message-Signature: i=" + next);

        // ARC-Seal (§4.1.3, §5.1.1): the ARC fields of every set in instance order, AAR, AMS, AS each, this seal last
        // with an empty b= and no final CRLF; relaxed header canonicalisation; only this set when cv=fail.
        var seal = new StringBuilder("ARC-Seal: i=").Append(next).Append("; a=rsa-sha256; t=").Append(seconds)
            .Append("; cv=").Append(cv).Append(";\r\n\td=").Append(key.Domain).Append("; s=").Append(key.Selector).Append("; b=");
        var data = new ArrayBufferWriter<byte>(4096);
        if (cv != "fail")
        {
            for (var i = 1; i <= previous; i++)
            {
                foreach (var field in sets[i])
                {
                    DkimCanonicalization.AppendRelaxedHeader(content.Slice(field!.Value.Start, field.Value.Length), data);
                }
            }
        }

        DkimCanonicalization.AppendRelaxedHeader(aar, data);
        DkimCanonicalization.AppendRelaxedHeader(ams, data);
        DkimCanonicalization.AppendRelaxedHeader(Encoding.ASCII.GetBytes(seal.ToString()), data, crlf: false);
        var signature = Convert.ToBase64String(key.Sign(data.WrittenSpan));
        for (var i = 0; i < signature.Length; i += 72)
        {
            seal.Append(i == 0 ? string.Empty : "\r\n\t ").Append(signature.AsSpan(i, Math.Min(72, signature.Length - i)));
        }

        var sealBytes = Encoding.ASCII.GetBytes(seal.Append("\r\n").ToString());
        return ArcSealResult.Sealed([.. sealBytes, .. ams, .. aar], previous + 1, cv);
    }

    /// <summary>The i= tag of an ARC field value (the first tag, RFC 8617 §4.2.1); 0 when there is none.</summary>
    private static int Instance(string value) =>
        int.TryParse(Tag(value, "i"), NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i : 0;

    /// <summary>A tag's value (white space removed) in a tag=value list; null when absent.</summary>
    private static string? Tag(string value, string name)
    {
        foreach (var tag in value.Split(';'))
        {
            var eq = tag.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && tag[..eq].Trim() == name)
            {
                return string.Concat(tag[(eq + 1)..].Where(c => !char.IsWhiteSpace(c)));
            }
        }

        return null;
    }

    /// <summary>The authserv-id of an Authentication-Results value: its first token (RFC 8601 §2.2), comments skipped.</summary>
    private static string? AuthServIdOf(string value)
    {
        var stripped = StripComments(value).TrimStart();
        var end = stripped.IndexOfAny([' ', '\t', ';']);
        var id = end < 0 ? stripped : stripped[..end];
        return id.Length >= 2 && id[0] == '"' && id[^1] == '"' ? id[1..^1] : id.Length == 0 ? null : id;
    }

    /// <summary>The result of the "arc" method in an Authentication-Results value (lower-case); null when absent.</summary>
    internal static string? ArcResult(string value)
    {
        var parts = StripComments(value).Split(';');
        for (var i = 1; i < parts.Length; i++)
        {
            var part = parts[i].Trim();
            if (part.StartsWith("arc", StringComparison.OrdinalIgnoreCase) && part.AsSpan(3).TrimStart().StartsWith("="))
            {
                var result = part[(part.IndexOf('=', StringComparison.Ordinal) + 1)..].TrimStart();
                var end = result.IndexOfAny([' ', '\t']);
                return (end < 0 ? result : result[..end]).ToLowerInvariant();
            }
        }

        return null;
    }

    private static string StripComments(string value)
    {
        var builder = new StringBuilder(value.Length);
        var depth = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\\' && depth > 0)
            {
                i++;
                continue;
            }

            if (c == '(')
            {
                depth++;
                builder.Append(depth == 1 ? " " : string.Empty);
            }
            else if (c == ')' && depth > 0)
            {
                depth--;
            }
            else if (depth == 0)
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}

/// <summary>What <see cref="ArcSealer.Seal(ReadOnlySpan{byte})"/> did: the set to send first (empty when not sealed), its i= and cv=, or why not.</summary>
internal readonly record struct ArcSealResult(ReadOnlyMemory<byte> Fields, int Instance, string? Cv, string Outcome)
{
    public static ArcSealResult Unsealed(string why) => new(ReadOnlyMemory<byte>.Empty, 0, null, why);

    public static ArcSealResult Sealed(byte[] fields, int instance, string cv) => new(fields, instance, cv, "sealed");

    public bool IsSealed => !Fields.IsEmpty;
}
