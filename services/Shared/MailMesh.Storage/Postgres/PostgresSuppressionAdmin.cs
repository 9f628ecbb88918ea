using System.Text;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary><see cref="ISuppressionAdmin"/> over policy.suppressions: walks the primary key (address) from the cursor.</summary>
public sealed class PostgresSuppressionAdmin(NpgsqlDataSource dataSource) : ISuppressionAdmin
{
    public async Task<IReadOnlyList<Suppression>> ListAsync(SuppressionQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var sql = new StringBuilder("SELECT address, reason, created_at, source, expires_at FROM policy.suppressions WHERE true");
        await using var command = dataSource.CreateCommand();
        if (query.Prefix is { Length: > 0 } prefix)
        {
            sql.Append(" AND address >= @prefix AND starts_with(address, @prefix)");
            command.Parameters.Add(new NpgsqlParameter<string>("prefix", prefix.ToLowerInvariant()));
        }

        if (query.Domain is { Length: > 0 } domain)
        {
            sql.Append(" AND address LIKE '%@' || @domain");
            command.Parameters.Add(new NpgsqlParameter<string>("domain", domain.ToLowerInvariant().Replace("%", "", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal)));
        }

        if (query.Source is { } source)
        {
            sql.Append(" AND source = @source");
            command.Parameters.Add(new NpgsqlParameter<string>("source", source));
        }

        if (query.After is { } after)
        {
            sql.Append(" AND address > @after");
            command.Parameters.Add(new NpgsqlParameter<string>("after", after));
        }

        sql.Append(" ORDER BY address LIMIT @limit");
        command.Parameters.Add(new NpgsqlParameter<int>("limit", Math.Clamp(query.Limit, 1, 10_000)));
        command.CommandText = sql.ToString();
        var list = new List<Suppression>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new Suppression
            {
                Address = reader.GetString(0),
                Reason = reader.GetString(1),
                CreatedAt = reader.GetFieldValue<DateTimeOffset>(2),
                Source = reader.GetString(3),
                ExpiresAt = reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4),
            });
        }

        return list;
    }
}
