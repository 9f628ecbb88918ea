using System.Text;

namespace MailMesh.Storage.Sqlite;

/// <summary><see cref="ISuppressionAdmin"/> over policy_suppressions: walks the primary key (address) from the cursor.</summary>
public sealed class SqliteSuppressionAdmin(SqliteDatabase database) : ISuppressionAdmin
{
    public async Task<IReadOnlyList<Suppression>> ListAsync(SuppressionQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        var sql = new StringBuilder("SELECT address, reason, created_at, source, expires_at FROM policy_suppressions WHERE 1");
        if (query.Prefix is { Length: > 0 } prefix)
        {
            sql.Append(" AND address >= @prefix AND substr(address, 1, length(@prefix)) = @prefix");
            command.Add("@prefix", prefix.ToLowerInvariant());
        }

        if (query.Domain is { Length: > 0 } domain)
        {
            sql.Append(" AND substr(address, -length(@domain) - 1) = '@' || @domain");
            command.Add("@domain", domain.ToLowerInvariant());
        }

        if (query.Source is { } source)
        {
            sql.Append(" AND source = @source");
            command.Add("@source", source);
        }

        if (query.After is { } after)
        {
            sql.Append(" AND address > @after");
            command.Add("@after", after);
        }

        sql.Append(" ORDER BY address LIMIT @limit");
        command.Add("@limit", Math.Clamp(query.Limit, 1, 10_000));
        command.CommandText = sql.ToString();
        var list = new List<Suppression>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new Suppression
            {
                Address = reader.GetString(0),
                Reason = reader.GetString(1),
                CreatedAt = reader.Timestamp(2),
                Source = reader.GetString(3),
                ExpiresAt = reader.NullableTimestamp(4),
            });
        }

        return list;
    }
}
