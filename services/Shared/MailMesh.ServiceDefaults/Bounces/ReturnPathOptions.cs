using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MailMesh.Smtp;

namespace MailMesh.ServiceDefaults.Bounces;

/// <summary>
/// The VERP return path (section "ReturnPath", <c>docs/delivery.md</c>): when <see cref="Domain"/> is set, Delivery sends
/// each message with <c>MAIL FROM:&lt;bounces+&lt;token&gt;@Domain&gt;</c>, the token naming the message and sealed with an
/// HMAC under <see cref="Secret"/>; Policy accepts mail to such an address (and only with a good token), and Queue reads
/// what arrives there as an asynchronous bounce (RFC 3464 DSN) or complaint (RFC 5965 ARF) about that message. One
/// section for Delivery, Policy and Queue, which must agree on both values.
/// </summary>
public sealed class ReturnPathOptions : IValidatedOptions
{
    /// <summary>The configuration section.</summary>
    public static string SectionName => "ReturnPath";

    /// <summary>The local part before the '+' of every return path.</summary>
    public const string LocalPartPrefix = "bounces+";

    /// <summary>Octets of the HMAC-SHA256 kept in the token (80 bits: a forged token is a 2^-80 guess).</summary>
    private const int MacLength = 10;

    /// <summary>The return-path domain (its MX must point at MailMesh's Ingress); empty: senders' own addresses are used.</summary>
    public string Domain { get; set; } = string.Empty;

    /// <summary>The HMAC key of the tokens (at least 32 characters; keep it in a secret). Required with <see cref="Domain"/>.</summary>
    public string Secret { get; set; } = string.Empty;

    /// <summary>Whether a return path is issued at all.</summary>
    public bool IsEnabled => NormalizedDomain.Length > 0;

    private string NormalizedDomain => Domain.Trim().TrimEnd('.').ToLowerInvariant();

    /// <summary>The return path for <paramref name="messageId"/>: <c>bounces+&lt;32 hex id&gt;&lt;20 hex mac&gt;@domain</c> (60 octets of local part, under RFC 5321's 64).</summary>
    public string For(Guid messageId) =>
        string.Concat(LocalPartPrefix, Convert.ToHexStringLower(messageId.ToByteArray()), Convert.ToHexStringLower(Mac(messageId)), "@", NormalizedDomain);

    /// <summary>Whether <paramref name="domain"/> (lower-case A-label) is the return-path domain.</summary>
    public bool IsReturnPathDomain(string domain) => IsEnabled && string.Equals(domain, NormalizedDomain, StringComparison.OrdinalIgnoreCase);

    /// <summary>The message a return path names, when <paramref name="address"/> is one this configuration issued.</summary>
    public bool TryRead(string address, out Guid messageId)
    {
        messageId = Guid.Empty;
        ArgumentNullException.ThrowIfNull(address);
        var at = address.LastIndexOf('@');
        if (!IsEnabled || at < 0 || !IsReturnPathDomain(address[(at + 1)..]) || !address.StartsWith(LocalPartPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var token = address.AsSpan(LocalPartPrefix.Length, at - LocalPartPrefix.Length);
        if (token.Length != (16 + MacLength) * 2)
        {
            return false;
        }

        byte[] raw;
        try
        {
            raw = Convert.FromHexString(token);
        }
        catch (FormatException)
        {
            return false;
        }

        var id = new Guid(raw.AsSpan(0, 16));
        if (!CryptographicOperations.FixedTimeEquals(raw.AsSpan(16), Mac(id)))
        {
            return false;
        }

        messageId = id;
        return true;
    }

    /// <summary>Every problem, naming its key.</summary>
    public IEnumerable<string> Validate()
    {
        if (Domain.Length > 0 && !NormalizedAddress.TryNormalizeDomain(Domain.Trim().TrimEnd('.'), out _))
        {
            yield return $"{SectionName}:{nameof(Domain)}: '{Domain}' is not a domain name";
        }

        if (Domain.Length > 0 && Secret.Length < 32)
        {
            yield return $"{SectionName}:{nameof(Secret)}: must be at least 32 characters when {SectionName}:{nameof(Domain)} is set (was {Secret.Length.ToString(CultureInfo.InvariantCulture)})";
        }
    }

    private byte[] Mac(Guid messageId) => HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), messageId.ToByteArray())[..MacLength];
}
