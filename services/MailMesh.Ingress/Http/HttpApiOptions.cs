using System.Globalization;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;

namespace MailMesh.Ingress.Http;

/// <summary>
/// The HTTP submission API (section "Ingress:Api"). Message size and recipient limits are the SMTP listener's
/// (Ingress:MaxMessageSize, Ingress:MaxRecipients), so both doors accept the same mail.
/// </summary>
public sealed class HttpApiOptions : IValidatedOptions
{
    public static string SectionName => "Ingress:Api";

    /// <summary>
    /// The API keys allowed to submit (Ingress:Api:Keys:n:Name and :Hash). With no key configured every request is
    /// answered 401: the API never accepts anonymous mail.
    /// </summary>
    public List<ApiKeyOptions> Keys { get; set; } = [];

    /// <summary>The Retry-After given with a 503 (Policy or the spool did not answer, or a transient refusal).</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(30);

    public IEnumerable<string> Validate()
    {
        const string P = "Ingress:Api:";
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var hashes = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < Keys.Count; i++)
        {
            var key = Keys[i];
            var prefix = P + "Keys:" + i.ToString(CultureInfo.InvariantCulture) + ":";
            if (!ApiKeys.IsValidName(key.Name))
            {
                yield return prefix + "Name: required, 1 to 64 characters of letters, digits and . _ @ -";
            }
            else if (!names.Add(key.Name!))
            {
                yield return prefix + $"Name: '{key.Name}' is used by another key";
            }

            if (!ApiKeys.IsValidHash(key.Hash))
            {
                yield return prefix + "Hash: must be the SHA-256 of the key as 64 hexadecimal digits";
            }
            else if (!hashes.Add(key.Hash!))
            {
                yield return prefix + "Hash: the same key is configured twice";
            }

            if (key.Pool is not null && !MailMesh.Smtp.PoolHeader.IsValidName(key.Pool))
            {
                yield return prefix + "Pool: a pool name is 1-64 letters, digits and . _ -";
            }

            if (!Acceptance.SenderDomains.IsValid(key.SenderDomains))
            {
                yield return prefix + $"SenderDomains: '{key.SenderDomains}' must be comma-separated domain names";
            }
        }

        if (RetryAfter < TimeSpan.FromSeconds(1) || RetryAfter > TimeSpan.FromHours(1))
        {
            yield return P + "RetryAfter: must be between 1 second and 1 hour";
        }
    }
}

/// <summary>One API key: who it is (the authenticated user Policy sees) and the SHA-256 of the secret.</summary>
public sealed class ApiKeyOptions
{
    /// <summary>The principal name: stored as the message's AuthenticatedUser and scoping its Idempotency-Keys.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// SHA-256 of the key's UTF-8 bytes, hexadecimal (printed with a new key by the <c>new-api-key</c> command, or
    /// <c>printf %s "$KEY" | sha256sum</c>); see <see cref="ApiKeys"/> for why a fast hash is enough.
    /// </summary>
    public string? Hash { get; set; }

    /// <summary>
    /// Comma-separated domains (each with its sub-domains) this key may use as the From domain; empty: any. A message
    /// from another domain is refused with 403 (DKIM signs for the From domain).
    /// </summary>
    public string? SenderDomains { get; set; }

    /// <summary>
    /// The source-IP pool (Delivery:Pools, docs/delivery.md "IP pools") of the messages this key submits, unless a
    /// message names its own (the <c>pool</c> member or query parameter, or an X-MailMesh-Pool header); null: none.
    /// </summary>
    public string? Pool { get; set; }
}
