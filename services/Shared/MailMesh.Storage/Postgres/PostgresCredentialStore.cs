using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary><see cref="ICredentialStore"/> over spool.api_keys; each change and its audit row in one transaction.</summary>
public sealed class PostgresCredentialStore(NpgsqlDataSource dataSource) : ICredentialStore
{
    private const string ListSql =
        """
        SELECT kind, name, hash, scopes, sender_domains, created_at, created_by, disabled_at, disabled_by
        FROM spool.api_keys ORDER BY kind, name
        """;

    private const string AddSql =
        """
        WITH added AS (
            INSERT INTO spool.api_keys (kind, name, hash, scopes, sender_domains, created_at, created_by)
            VALUES (@kind, @name, @hash, @scopes, @sender_domains, @at, @actor)
            ON CONFLICT DO NOTHING
            RETURNING name)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, @target, 1, 0 FROM added
        """;

    private const string DisableSql =
        """
        WITH disabled AS (
            UPDATE spool.api_keys SET disabled_at = @at, disabled_by = @actor
            WHERE kind = @kind AND name = @name AND disabled_at IS NULL
            RETURNING name)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, @target, 1, 0 FROM disabled
        """;

    public async Task<IReadOnlyList<StoredApiKey>> ListApiKeysAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ListSql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var keys = new List<StoredApiKey>();
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(new StoredApiKey
            {
                Kind = (ApiKeyKind)reader.GetInt16(0),
                Name = reader.GetString(1),
                Hash = reader.GetString(2),
                Scopes = reader.GetString(3),
                SenderDomains = reader.IsDBNull(4) ? null : reader.GetString(4),
                CreatedAt = reader.GetFieldValue<DateTimeOffset>(5),
                CreatedBy = reader.GetString(6),
                DisabledAt = reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7),
                DisabledBy = reader.IsDBNull(8) ? null : reader.GetString(8),
            });
        }

        return keys;
    }

    public async Task<bool> AddApiKeyAsync(StoredApiKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        await using var command = dataSource.CreateCommand(AddSql);
        command.Parameters.Add(new NpgsqlParameter<short>("kind", (short)key.Kind));
        command.Parameters.Add(new NpgsqlParameter<string>("name", key.Name));
        command.Parameters.Add(new NpgsqlParameter<string>("hash", key.Hash));
        command.Parameters.Add(new NpgsqlParameter<string>("scopes", key.Scopes));
        command.Parameters.Add(new NpgsqlParameter("sender_domains", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)key.SenderDomains ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("at", key.CreatedAt.ToUniversalTime()));
        command.Parameters.Add(new NpgsqlParameter<string>("actor", key.CreatedBy));
        command.Parameters.Add(new NpgsqlParameter<string>("action", CredentialAudit.Created));
        command.Parameters.Add(new NpgsqlParameter<string>("target", CredentialAudit.Target(key.Kind, key.Name)));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async Task<bool> DisableApiKeyAsync(ApiKeyKind kind, string name, string actor, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(actor);
        await using var command = dataSource.CreateCommand(DisableSql);
        command.Parameters.Add(new NpgsqlParameter<short>("kind", (short)kind));
        command.Parameters.Add(new NpgsqlParameter<string>("name", name));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("at", at.ToUniversalTime()));
        command.Parameters.Add(new NpgsqlParameter<string>("actor", actor));
        command.Parameters.Add(new NpgsqlParameter<string>("action", CredentialAudit.Disabled));
        command.Parameters.Add(new NpgsqlParameter<string>("target", CredentialAudit.Target(kind, name)));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }
}
