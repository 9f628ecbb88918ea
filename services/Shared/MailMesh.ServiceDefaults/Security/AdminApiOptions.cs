using System.Globalization;

namespace MailMesh.ServiceDefaults.Security;

/// <summary>
/// The admin API keys (section "Admin"): who may call the status and management endpoints (message status, queue
/// depth, the suppression list) and with which scopes. Separate from the submission keys (Ingress:Api:Keys): a
/// submission key is not accepted on an admin endpoint, nor an admin key for submission. With no key configured
/// every admin request is answered 401.
/// </summary>
public sealed class AdminApiOptions : IValidatedOptions
{
    public static string SectionName => "Admin";

    /// <summary>Admin:ApiKeys:n:Name, :Hash and :Scopes.</summary>
    public List<AdminApiKeyOptions> ApiKeys { get; set; } = [];

    /// <summary>
    /// How often each process re-reads the API keys made through the admin API: a key made or disabled on one
    /// replica opens, or stops opening, every other within this time. Default 5 s.
    /// </summary>
    public TimeSpan KeyRefreshInterval { get; set; } = TimeSpan.FromSeconds(5);

    public IEnumerable<string> Validate()
    {
        if (KeyRefreshInterval < TimeSpan.FromMilliseconds(100) || KeyRefreshInterval > TimeSpan.FromHours(1))
        {
            yield return $"Admin:KeyRefreshInterval: must be between 00:00:00.1 and 01:00:00 (was {KeyRefreshInterval})";
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var hashes = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < ApiKeys.Count; i++)
        {
            var key = ApiKeys[i];
            var prefix = "Admin:ApiKeys:" + i.ToString(CultureInfo.InvariantCulture) + ":";
            var label = Security.ApiKeys.IsValidName(key.Name) ? $" (key '{key.Name}')" : string.Empty;
            if (!Security.ApiKeys.IsValidName(key.Name))
            {
                yield return prefix + "Name: required, 1 to 64 characters of letters, digits and . _ @ -";
            }
            else if (!names.Add(key.Name!))
            {
                yield return prefix + $"Name: '{key.Name}' is used by another admin key";
            }

            if (!Security.ApiKeys.IsValidHash(key.Hash))
            {
                yield return prefix + $"Hash{label}: must be the SHA-256 of the key as 64 hexadecimal digits (run: MailMesh.Standalone new-api-key)";
            }
            else if (!hashes.Add(key.Hash!))
            {
                yield return prefix + $"Hash{label}: the same key is configured twice";
            }

            var scopes = AdminScopes.Split(key.Scopes).ToList();
            if (scopes.Count == 0)
            {
                yield return prefix + $"Scopes{label}: required, one or more of {string.Join(' ', AdminScopes.All)}";
            }

            foreach (var scope in scopes.Where(s => !AdminScopes.All.Contains(s, StringComparer.Ordinal)))
            {
                yield return prefix + $"Scopes{label}: '{scope}' is not a scope (known: {string.Join(' ', AdminScopes.All)})";
            }
        }
    }
}

/// <summary>One admin API key: a name (logged with what it does), the SHA-256 of the secret, and its scopes.</summary>
public sealed class AdminApiKeyOptions
{
    public string? Name { get; set; }

    /// <summary>SHA-256 of the key's UTF-8 bytes, hexadecimal, as printed by the <c>new-api-key</c> command.</summary>
    public string? Hash { get; set; }

    /// <summary>Space- or comma-separated scopes, e.g. <c>messages:read queue:read</c> (see <see cref="AdminScopes"/>).</summary>
    public string? Scopes { get; set; }
}
