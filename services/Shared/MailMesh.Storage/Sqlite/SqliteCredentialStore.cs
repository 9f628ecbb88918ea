namespace MailMesh.Storage.Sqlite;

/// <summary><see cref="ICredentialStore"/> over spool_api_keys; each change and its audit row in one write transaction.</summary>
public sealed class SqliteCredentialStore(SqliteDatabase database) : ICredentialStore
{
    private const string ListSql =
        """
        SELECT kind, name, hash, scopes, sender_domains, created_at, created_by, disabled_at, disabled_by
        FROM spool_api_keys ORDER BY kind, name
        """;

    private const string AddSql =
        """
        INSERT INTO spool_api_keys (kind, name, hash, scopes, sender_domains, created_at, created_by)
        VALUES (@kind, @name, @hash, @scopes, @sender_domains, @at, @actor)
        ON CONFLICT DO NOTHING
        """;

    private const string DisableSql =
        "UPDATE spool_api_keys SET disabled_at = @at, disabled_by = @actor WHERE kind = @kind AND name = @name AND disabled_at IS NULL";

    private const string AuditSql =
        """
        INSERT INTO spool_admin_audit (at, actor, action, target, changed, skipped)
        VALUES (@at, @actor, @action, @target, 1, 0)
        """;

    public async Task<IReadOnlyList<StoredApiKey>> ListApiKeysAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = ListSql;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var keys = new List<StoredApiKey>();
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(new StoredApiKey
            {
                Kind = (ApiKeyKind)reader.GetInt32(0),
                Name = reader.GetString(1),
                Hash = reader.GetString(2),
                Scopes = reader.GetString(3),
                SenderDomains = reader.NullableString(4),
                CreatedAt = reader.Timestamp(5),
                CreatedBy = reader.GetString(6),
                DisabledAt = reader.NullableTimestamp(7),
                DisabledBy = reader.NullableString(8),
            });
        }

        return keys;
    }

    public Task<bool> AddApiKeyAsync(StoredApiKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        var at = StoreArguments.ToUnixMs(key.CreatedAt);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(AddSql);
            command.Add("@kind", (int)key.Kind);
            command.Add("@name", key.Name);
            command.Add("@hash", key.Hash);
            command.Add("@scopes", key.Scopes);
            command.Add("@sender_domains", key.SenderDomains);
            command.Add("@at", at);
            command.Add("@actor", key.CreatedBy);
            if (await command.ExecuteNonQueryAsync(CancellationToken.None) == 0)
            {
                return false;
            }

            await AuditAsync(write, at, key.CreatedBy, CredentialAudit.Created, CredentialAudit.Target(key.Kind, key.Name));
            return true;
        }, 0, cancellationToken);
    }

    public Task<bool> DisableApiKeyAsync(ApiKeyKind kind, string name, string actor, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(actor);
        var atMs = StoreArguments.ToUnixMs(at);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(DisableSql);
            command.Add("@kind", (int)kind);
            command.Add("@name", name);
            command.Add("@at", atMs);
            command.Add("@actor", actor);
            if (await command.ExecuteNonQueryAsync(CancellationToken.None) == 0)
            {
                return false;
            }

            await AuditAsync(write, atMs, actor, CredentialAudit.Disabled, CredentialAudit.Target(kind, name));
            return true;
        }, 0, cancellationToken);
    }

    /// <summary>Writes one admin audit row inside <paramref name="write"/> (also used by <see cref="SqliteWebhookStore"/>).</summary>
    internal static async Task AuditAsync(SqliteWrite write, long at, string actor, string action, string target)
    {
        await using var audit = write.CreateCommand(AuditSql);
        audit.Add("@at", at);
        audit.Add("@actor", actor);
        audit.Add("@action", action);
        audit.Add("@target", target);
        await audit.ExecuteNonQueryAsync(CancellationToken.None);
    }
}
