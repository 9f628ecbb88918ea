namespace MailMesh.Storage.Sqlite;

/// <summary><see cref="ISmtpUserStore"/> over spool_smtp_users (names COLLATE NOCASE); each change and its audit row in one write transaction.</summary>
public sealed class SqliteSmtpUserStore(SqliteDatabase database) : ISmtpUserStore
{
    private const string ListSql =
        $"""
        SELECT {SmtpUserAudit.Columns} FROM spool_smtp_users ORDER BY name
        """;

    private const string AddSql =
        """
        INSERT INTO spool_smtp_users (name, password_hash, sender_domains, created_at, created_by)
        VALUES (@name, @hash, @sender_domains, @at, @actor)
        ON CONFLICT DO NOTHING
        RETURNING name
        """;

    private const string DisableSql =
        "UPDATE spool_smtp_users SET disabled_at = @at, disabled_by = @actor WHERE name = @name AND disabled_at IS NULL RETURNING name";

    private const string EnableSql =
        "UPDATE spool_smtp_users SET disabled_at = NULL, disabled_by = NULL WHERE name = @name AND disabled_at IS NOT NULL RETURNING name";

    private const string PasswordSql =
        "UPDATE spool_smtp_users SET password_hash = @hash, password_changed_at = @at, password_changed_by = @actor WHERE name = @name RETURNING name";

    /// <inheritdoc />
    public async Task<IReadOnlyList<StoredSmtpUser>> ListSmtpUsersAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = ListSql;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var users = new List<StoredSmtpUser>();
        while (await reader.ReadAsync(cancellationToken))
        {
            users.Add(SmtpUserAudit.Read(reader, i => reader.NullableTimestamp(i)));
        }

        return users;
    }

    /// <inheritdoc />
    public Task<bool> AddSmtpUserAsync(StoredSmtpUser user, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(user);
        return ChangeAsync(AddSql, user.Name, user.PasswordHash, user.SenderDomains, user.CreatedBy, user.CreatedAt, SmtpUserAudit.Created, cancellationToken);
    }

    /// <inheritdoc />
    public Task<bool> SetSmtpUserEnabledAsync(string name, bool enabled, string actor, DateTimeOffset at, CancellationToken cancellationToken) =>
        ChangeAsync(enabled ? EnableSql : DisableSql, name, null, null, actor, at, enabled ? SmtpUserAudit.Enabled : SmtpUserAudit.Disabled, cancellationToken);

    /// <inheritdoc />
    public Task<bool> SetSmtpUserPasswordAsync(string name, string passwordHash, string actor, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(passwordHash);
        return ChangeAsync(PasswordSql, name, passwordHash, null, actor, at, SmtpUserAudit.PasswordReset, cancellationToken);
    }

    /// <summary>Runs one change; when it touched a row, its audit row (naming the user as stored) in the same transaction.</summary>
    private Task<bool> ChangeAsync(
        string sql, string name, string? hash, string? senderDomains, string actor, DateTimeOffset at, string action, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(actor);
        var atMs = StoreArguments.ToUnixMs(at);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(sql);
            command.Add("@name", name);
            command.Add("@at", atMs);
            command.Add("@actor", actor);
            if (sql.Contains("@hash", StringComparison.Ordinal))
            {
                command.Add("@hash", hash);
            }

            if (sql.Contains("@sender_domains", StringComparison.Ordinal))
            {
                command.Add("@sender_domains", senderDomains);
            }

            if (await command.ExecuteScalarAsync(CancellationToken.None) is not string stored)
            {
                return false;
            }

            await SqliteCredentialStore.AuditAsync(write, atMs, actor, action, SmtpUserAudit.Target(stored));
            return true;
        }, 0, cancellationToken);
    }
}
