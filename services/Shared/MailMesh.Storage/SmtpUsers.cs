namespace MailMesh.Storage;

/// <summary>
/// An SMTP AUTH user made through the admin API (issue 12) rather than configured in Ingress:Auth:Users: like a
/// configured one it is kept only as a PBKDF2 hash of its password (<c>pbkdf2-sha256$iterations$salt$hash</c>). A
/// disabled user stays listed (who made it, who disabled it, when) but cannot authenticate.
/// </summary>
public sealed record StoredSmtpUser
{
    /// <summary>1 to 64 characters of letters, digits and <c>. _ @ -</c>; unique whatever its case, also among configured users.</summary>
    public required string Name { get; init; }

    /// <summary>The password's PBKDF2 hash, never the password; never returned by the admin API.</summary>
    public required string PasswordHash { get; init; }

    /// <summary>The From domains the user may send as (comma-separated, each with its sub-domains); null: any.</summary>
    public string? SenderDomains { get; init; }

    /// <summary>When it was made.</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The admin key (or "person (via key)") that made it.</summary>
    public required string CreatedBy { get; init; }

    /// <summary>When it was disabled; null while enabled.</summary>
    public DateTimeOffset? DisabledAt { get; init; }

    /// <summary>Who disabled it; null while enabled.</summary>
    public string? DisabledBy { get; init; }

    /// <summary>When its password was last reset through the admin API; null when never.</summary>
    public DateTimeOffset? PasswordChangedAt { get; init; }

    /// <summary>Who last reset its password.</summary>
    public string? PasswordChangedBy { get; init; }

    /// <summary>True while it may authenticate.</summary>
    public bool Enabled => DisabledAt is null;
}

/// <summary>
/// The SMTP AUTH users made through the admin API, shared by every Ingress replica (PostgreSQL) or by Standalone's one
/// process (SQLite). Names are compared without regard to case. Each change writes its admin audit row in the same
/// transaction; a call that changes nothing writes none.
/// </summary>
public interface ISmtpUserStore
{
    /// <summary>Every stored user, enabled and disabled, by name.</summary>
    Task<IReadOnlyList<StoredSmtpUser>> ListSmtpUsersAsync(CancellationToken cancellationToken);

    /// <summary>Adds <paramref name="user"/>; false (and nothing written) when a user of that name exists (in any case).</summary>
    Task<bool> AddSmtpUserAsync(StoredSmtpUser user, CancellationToken cancellationToken);

    /// <summary>Disables or enables the user; false when there is no such user or it already was (idempotent).</summary>
    Task<bool> SetSmtpUserEnabledAsync(string name, bool enabled, string actor, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Replaces the user's password hash; false when there is no such user.</summary>
    Task<bool> SetSmtpUserPasswordAsync(string name, string passwordHash, string actor, DateTimeOffset at, CancellationToken cancellationToken);
}

/// <summary>The audit wording of SMTP user changes and the row reader, shared by both stores.</summary>
internal static class SmtpUserAudit
{
    public const string Created = "smtp-user.create";
    public const string Disabled = "smtp-user.disable";
    public const string Enabled = "smtp-user.enable";
    public const string PasswordReset = "smtp-user.password";

    public static string Target(string name) => "smtp user " + name;

    /// <summary>The columns both stores select, in this order.</summary>
    public const string Columns = "name, password_hash, sender_domains, created_at, created_by, disabled_at, disabled_by, password_changed_at, password_changed_by";

    /// <summary>One row of <see cref="Columns"/>; <paramref name="time"/> reads the store's nullable timestamp at an ordinal.</summary>
    public static StoredSmtpUser Read(System.Data.Common.DbDataReader reader, Func<int, DateTimeOffset?> time) => new()
    {
        Name = reader.GetString(0),
        PasswordHash = reader.GetString(1),
        SenderDomains = reader.IsDBNull(2) ? null : reader.GetString(2),
        CreatedAt = time(3) ?? throw new InvalidOperationException("created_at is NOT NULL"),
        CreatedBy = reader.GetString(4),
        DisabledAt = time(5),
        DisabledBy = reader.IsDBNull(6) ? null : reader.GetString(6),
        PasswordChangedAt = time(7),
        PasswordChangedBy = reader.IsDBNull(8) ? null : reader.GetString(8),
    };
}
