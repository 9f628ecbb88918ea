using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Primitives;

namespace MailMesh.ServiceDefaults.Security;

/// <summary>
/// API keys as MailMesh stores them, for submission keys (Ingress:Api:Keys) and admin keys (Admin:ApiKeys) alike: a
/// random high-entropy secret that is configured only as the SHA-256 of its UTF-8 bytes, in hexadecimal. A fast hash
/// is enough because nothing about a random 256-bit key can be brute-forced; a slow one would only cost CPU per request.
/// </summary>
public static class ApiKeys
{
    /// <summary>Longer bearer tokens are refused without hashing.</summary>
    public const int MaxKeyLength = 512;

    /// <summary>The prefix of keys made by <see cref="Create"/>: lets secret scanners recognise a leaked key.</summary>
    public const string Prefix = "mmk_";

    /// <summary>1 to 64 characters of letters, digits and <c>. _ @ -</c>.</summary>
    public static bool IsValidName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= 64
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '@' or '-');

    /// <summary>The SHA-256 of a key as 64 hexadecimal digits.</summary>
    public static bool IsValidHash(string? hash) =>
        hash is { Length: 64 } && hash.All(char.IsAsciiHexDigit);

    /// <summary>A new random key: the prefix and 32 random octets in base64url (RFC 4648 §5), 256 bits of entropy.</summary>
    public static string Create() =>
        Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The configured form of <paramref name="key"/>: lower-case hexadecimal SHA-256 of its UTF-8 bytes.</summary>
    public static string Hash(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
    }

    /// <summary>
    /// The token of an <c>Authorization: Bearer &lt;token&gt;</c> header (RFC 6750 §2.1; the scheme name is
    /// case-insensitive, RFC 9110 §11.1). False when the header is absent or malformed.
    /// </summary>
    public static bool TryReadBearer(StringValues authorization, out string token)
    {
        token = string.Empty;
        var value = authorization.Count == 1 ? authorization[0] : null;
        if (value is null || !value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        token = value[7..].Trim(' ');
        return true;
    }
}

/// <summary>
/// A set of configured API keys (hashes only) with a value per key; finds the entry a presented key belongs to,
/// comparing against every hash in constant time so timing says nothing about which key (if any) matched.
/// </summary>
public sealed class ApiKeySet<T>
{
    private readonly (byte[] Hash, T Value)[] _entries;

    /// <summary>Entries whose hash is not valid (<see cref="ApiKeys.IsValidHash"/>) are left out; options validation names them.</summary>
    public ApiKeySet(IEnumerable<(string? Hash, T Value)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        _entries = [.. entries.Where(e => ApiKeys.IsValidHash(e.Hash)).Select(e => (Convert.FromHexString(e.Hash!), e.Value))];
    }

    public int Count => _entries.Length;

    public bool TryMatch(ReadOnlySpan<char> key, out T value)
    {
        value = default!;
        if (key.IsEmpty || key.Length > ApiKeys.MaxKeyLength)
        {
            return false;
        }

        Span<byte> utf8 = stackalloc byte[Encoding.UTF8.GetMaxByteCount(ApiKeys.MaxKeyLength)];
        var length = Encoding.UTF8.GetBytes(key, utf8);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(utf8[..length], hash);
        CryptographicOperations.ZeroMemory(utf8[..length]);

        var match = -1;
        for (var i = 0; i < _entries.Length; i++)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, _entries[i].Hash))
            {
                match = i;
            }
        }

        if (match < 0)
        {
            return false;
        }

        value = _entries[match].Value;
        return true;
    }
}
