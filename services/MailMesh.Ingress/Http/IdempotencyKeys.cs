using System.Security.Cryptography;
using System.Text;

namespace MailMesh.Ingress.Http;

/// <summary>
/// Idempotent submission (the Idempotency-Key request header, draft-ietf-httpapi-idempotency-key-header): the message id
/// is a name-based UUID of (API key name, Idempotency-Key), so a retry maps to the same id and the spool's "storing the
/// same id twice is a no-op" stores it once. No separate key table is needed and the guarantee holds across replicas.
/// </summary>
internal static class IdempotencyKeys
{
    public const string HeaderName = "Idempotency-Key";

    /// <summary>Longest accepted key; UUIDs and ULIDs, what clients should send, are far shorter.</summary>
    public const int MaxLength = 255;

    /// <summary>The namespace of MailMesh idempotent submissions (a fixed, random UUID).</summary>
    private static readonly Guid Namespace = new("5f0f6c36-3c9e-4c4b-9a55-1c2de8a7e1b1");

    /// <summary>
    /// The key as sent: a Structured Field string (RFC 8941 §3.3.3, "\"...\""), or the bare token many clients send.
    /// Printable ASCII only.
    /// </summary>
    public static bool TryParse(string? header, out string key, out string error)
    {
        key = string.Empty;
        error = string.Empty;
        var value = header?.Trim() ?? string.Empty;
        if (value.Length >= 2 && value[0] == '"' && value[^1] == '"')
        {
            value = value[1..^1].Replace("\\\"", "\"", StringComparison.Ordinal).Replace("\\\\", "\\", StringComparison.Ordinal);
        }

        if (value.Length is 0 or > MaxLength || !value.All(c => c is >= ' ' and < (char)127))
        {
            error = $"must be 1 to {MaxLength} printable ASCII characters, e.g. a UUID";
            return false;
        }

        key = value;
        return true;
    }

    /// <summary>RFC 9562 §5.5 (version 5, SHA-1) UUID of "keyName\0key" in the MailMesh namespace.</summary>
    public static Guid MessageId(string keyName, string key)
    {
        var name = Encoding.UTF8.GetBytes(keyName + "\0" + key);
        var input = new byte[16 + name.Length];
        Namespace.TryWriteBytes(input, bigEndian: true, out _);
        name.CopyTo(input, 16);

        // SHA-1 is what RFC 9562 §5.5 specifies for version 5; it names, it does not protect anything here.
#pragma warning disable CA5350
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(input, hash);
#pragma warning restore CA5350
        var bytes = hash[..16];
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x50); // version 5
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC 9562 variant
        return new Guid(bytes, bigEndian: true);
    }
}
