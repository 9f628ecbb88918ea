namespace MailMesh.Storage;

/// <summary>Which API an API key opens.</summary>
public enum ApiKeyKind
{
    /// <summary>The admin API (<c>/api/v1/admin</c>, message status, queue), with scopes.</summary>
    Admin = 0,

    /// <summary>The HTTP submission API of Ingress (<c>POST /api/v1/messages</c>).</summary>
    Submission = 1,
}

/// <summary>
/// An API key made through the admin API (issue 12) rather than configured: like a configured key it is kept only as
/// the SHA-256 of its secret. A disabled key stays listed (who made it, who disabled it, when) but opens nothing.
/// </summary>
public sealed record StoredApiKey
{
    public required ApiKeyKind Kind { get; init; }

    /// <summary>1 to 64 characters of letters, digits and <c>. _ @ -</c>; unique per kind, also among configured keys.</summary>
    public required string Name { get; init; }

    /// <summary>Lower-case hexadecimal SHA-256 of the key's UTF-8 bytes.</summary>
    public required string Hash { get; init; }

    /// <summary>Admin keys: space-separated scopes. Submission keys: empty.</summary>
    public string Scopes { get; init; } = string.Empty;

    /// <summary>Submission keys: the From domains the key may send as (comma-separated); null: any.</summary>
    public string? SenderDomains { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The admin key that created it.</summary>
    public required string CreatedBy { get; init; }

    public DateTimeOffset? DisabledAt { get; init; }

    public string? DisabledBy { get; init; }

    public bool Enabled => DisabledAt is null;
}

/// <summary>
/// The API keys made through the admin API, shared by every service and replica (PostgreSQL) or by Standalone's one
/// process (SQLite). Each change writes its admin audit row in the same transaction.
/// </summary>
public interface ICredentialStore
{
    /// <summary>Every stored key, enabled and disabled, by kind and name.</summary>
    Task<IReadOnlyList<StoredApiKey>> ListApiKeysAsync(CancellationToken cancellationToken);

    /// <summary>Adds <paramref name="key"/>; false (and nothing written) when its kind already has a key of that name.</summary>
    Task<bool> AddApiKeyAsync(StoredApiKey key, CancellationToken cancellationToken);

    /// <summary>Disables the key; false when there is no such key or it was already disabled (idempotent).</summary>
    Task<bool> DisableApiKeyAsync(ApiKeyKind kind, string name, string actor, DateTimeOffset at, CancellationToken cancellationToken);
}

/// <summary>Audit trail wording shared by both stores.</summary>
internal static class CredentialAudit
{
    public const string Created = "key.create";
    public const string Disabled = "key.disable";

    public static string Target(ApiKeyKind kind, string name) => $"{kind.ToString().ToLowerInvariant()} key {name}";
}
