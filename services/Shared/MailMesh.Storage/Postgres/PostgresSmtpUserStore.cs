using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// <see cref="ISmtpUserStore"/> over spool.smtp_users; each change and its audit row in one statement. Names match
/// without regard to case; the audit names the user as stored.
/// </summary>
public sealed class PostgresSmtpUserStore(NpgsqlDataSource dataSource) : ISmtpUserStore
{
    private const string ListSql =
        $"""
        SELECT {SmtpUserAudit.Columns} FROM spool.smtp_users ORDER BY lower(name)
        """;

    private const string AddSql =
        """
        WITH added AS (
            INSERT INTO spool.smtp_users (name, password_hash, sender_domains, created_at, created_by)
            VALUES (@name, @hash, @sender_domains, @at, @actor)
            ON CONFLICT DO NOTHING
            RETURNING name)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, @target_prefix || name, 1, 0 FROM added
        """;

    private const string DisableSql =
        """
        WITH changed AS (
            UPDATE spool.smtp_users SET disabled_at = @at, disabled_by = @actor
            WHERE lower(name) = lower(@name) AND disabled_at IS NULL
            RETURNING name)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, @target_prefix || name, 1, 0 FROM changed
        """;

    private const string EnableSql =
        """
        WITH changed AS (
            UPDATE spool.smtp_users SET disabled_at = NULL, disabled_by = NULL
            WHERE lower(name) = lower(@name) AND disabled_at IS NOT NULL
            RETURNING name)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, @target_prefix || name, 1, 0 FROM changed
        """;

    private const string PasswordSql =
        """
        WITH changed AS (
            UPDATE spool.smtp_users SET password_hash = @hash, password_changed_at = @at, password_changed_by = @actor
            WHERE lower(name) = lower(@name)
            RETURNING name)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, @target_prefix || name, 1, 0 FROM changed
        """;

    /// <inheritdoc />
    public async Task<IReadOnlyList<StoredSmtpUser>> ListSmtpUsersAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ListSql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var users = new List<StoredSmtpUser>();
        while (await reader.ReadAsync(cancellationToken))
        {
            users.Add(SmtpUserAudit.Read(reader, i => reader.IsDBNull(i) ? null : reader.GetFieldValue<DateTimeOffset>(i)));
        }

        return users;
    }

    /// <inheritdoc />
    public async Task<bool> AddSmtpUserAsync(StoredSmtpUser user, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        await using var command = dataSource.CreateCommand(AddSql);
        command.Parameters.Add(new NpgsqlParameter<string>("name", user.Name));
        command.Parameters.Add(new NpgsqlParameter<string>("hash", user.PasswordHash));
        command.Parameters.Add(new NpgsqlParameter("sender_domains", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)user.SenderDomains ?? DBNull.Value });
        AddAudit(command, user.CreatedAt, user.CreatedBy, SmtpUserAudit.Created);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <inheritdoc />
    public async Task<bool> SetSmtpUserEnabledAsync(string name, bool enabled, string actor, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        await using var command = dataSource.CreateCommand(enabled ? EnableSql : DisableSql);
        command.Parameters.Add(new NpgsqlParameter<string>("name", name));
        AddAudit(command, at, actor, enabled ? SmtpUserAudit.Enabled : SmtpUserAudit.Disabled);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <inheritdoc />
    public async Task<bool> SetSmtpUserPasswordAsync(string name, string passwordHash, string actor, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(passwordHash);
        await using var command = dataSource.CreateCommand(PasswordSql);
        command.Parameters.Add(new NpgsqlParameter<string>("name", name));
        command.Parameters.Add(new NpgsqlParameter<string>("hash", passwordHash));
        AddAudit(command, at, actor, SmtpUserAudit.PasswordReset);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    private static void AddAudit(NpgsqlCommand command, DateTimeOffset at, string actor, string action)
    {
        ArgumentNullException.ThrowIfNull(actor);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("at", at.ToUniversalTime()));
        command.Parameters.Add(new NpgsqlParameter<string>("actor", actor));
        command.Parameters.Add(new NpgsqlParameter<string>("action", action));
        command.Parameters.Add(new NpgsqlParameter<string>("target_prefix", SmtpUserAudit.Target(string.Empty)));
    }
}
