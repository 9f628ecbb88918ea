using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MailMesh.ServiceDefaults.Security;

/// <summary>
/// Self-describing password hashes: "pbkdf2-sha256$iterations$salt$hash" (salt and hash in base64). PBKDF2 with
/// HMAC-SHA-256 (RFC 8018 §5.2; OWASP 2023 recommends at least 600 000 iterations), compared in constant time. One
/// format for SMTP AUTH users (Ingress:Auth:Users) and mailbox accounts (Mailbox:Users), made by the "hash-password" verb.
/// </summary>
public static class PasswordHash
{
    public const string Scheme = "pbkdf2-sha256";
    public const int DefaultIterations = 600_000;
    public const int MinIterations = 10_000;
    private const int SaltSize = 16;
    private const int HashSize = 32;

    public static string Create(string password, int iterations = DefaultIterations)
    {
        ArgumentNullException.ThrowIfNull(password);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, MinIterations);
        var salt = RandomNumberGenerator.GetBytes(SaltSize);
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, HashSize);
        return string.Join('$', Scheme, iterations.ToString(CultureInfo.InvariantCulture), Convert.ToBase64String(salt), Convert.ToBase64String(hash));
    }

    /// <summary>Parses a stored hash; false (with the reason) when it is not in the expected form.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out Parsed? parsed, out string error)
    {
        parsed = null;
        error = string.Empty;
        var parts = (text ?? string.Empty).Split('$');
        if (parts.Length != 4 || parts[0] != Scheme)
        {
            error = "must be " + Scheme + "$iterations$salt$hash (run the service with: hash-password)";
            return false;
        }

        if (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var iterations) || iterations < MinIterations)
        {
            error = "iterations must be a number of at least " + MinIterations.ToString(CultureInfo.InvariantCulture);
            return false;
        }

        var salt = new byte[parts[2].Length];
        var hash = new byte[parts[3].Length];
        if (!Convert.TryFromBase64String(parts[2], salt, out var saltLength) || saltLength < 8
            || !Convert.TryFromBase64String(parts[3], hash, out var hashLength) || hashLength < 16)
        {
            error = "salt and hash must be base64 (salt at least 8 octets, hash at least 16)";
            return false;
        }

        parsed = new Parsed(iterations, salt[..saltLength], hash[..hashLength]);
        return true;
    }

    /// <summary>The parsed form of a stored hash; <see cref="Verify"/> takes time independent of where a mismatch is.</summary>
    public sealed record Parsed(int Iterations, byte[] Salt, byte[] Hash)
    {
        public bool Verify(ReadOnlySpan<byte> password)
        {
            Span<byte> actual = stackalloc byte[Hash.Length];
            Rfc2898DeriveBytes.Pbkdf2(password, Salt, actual, Iterations, HashAlgorithmName.SHA256);
            return CryptographicOperations.FixedTimeEquals(actual, Hash);
        }
    }
}
