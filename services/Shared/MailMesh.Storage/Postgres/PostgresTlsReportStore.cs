using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>The TLS reporting aggregate in PostgreSQL (spool.tls_report_counts, spool.tls_reports_sent).</summary>
public sealed class PostgresTlsReportStore(NpgsqlDataSource dataSource) : ITlsReportStore
{
    private const string AddSql =
        """
        INSERT INTO spool.tls_report_counts AS c
            (day, policy_domain, row_key, policy_type, policy_strings, result_type, mx_host, receiving_ip, detail, count)
        VALUES (@day, @domain, @row_key, @policy_type, @policy_strings, @result_type, @mx_host, @receiving_ip, @detail, @count)
        ON CONFLICT (day, policy_domain, row_key) DO UPDATE SET count = c.count + excluded.count
        """;

    private const string UnsentSql =
        """
        SELECT DISTINCT c.policy_domain FROM spool.tls_report_counts c
        WHERE c.day = @day AND NOT EXISTS (
            SELECT 1 FROM spool.tls_reports_sent s WHERE s.day = c.day AND s.policy_domain = c.policy_domain)
        ORDER BY 1
        """;

    private const string ReadSql =
        """
        SELECT policy_type, policy_strings, result_type, mx_host, receiving_ip, detail, count
        FROM spool.tls_report_counts WHERE day = @day AND policy_domain = @domain ORDER BY policy_type, row_key
        """;

    private const string ClaimSql =
        """
        INSERT INTO spool.tls_reports_sent (day, policy_domain, report_id, claimed_at) VALUES (@day, @domain, @report_id, @now)
        ON CONFLICT DO NOTHING
        """;

    private const string ReleaseSql = "DELETE FROM spool.tls_reports_sent WHERE day = @day AND policy_domain = @domain";

    private const string PruneSql =
        """
        DELETE FROM spool.tls_report_counts WHERE day < @before;
        DELETE FROM spool.tls_reports_sent WHERE day < @before;
        """;

    public async Task AddAsync(IReadOnlyList<TlsReportCount> counts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(counts);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection);
        foreach (var count in counts)
        {
            var command = new NpgsqlBatchCommand(AddSql);
            command.Parameters.Add(new NpgsqlParameter<DateOnly>("day", count.Day));
            command.Parameters.Add(new NpgsqlParameter<string>("domain", count.PolicyDomain));
            command.Parameters.Add(new NpgsqlParameter<string>("row_key", count.RowKey));
            command.Parameters.Add(new NpgsqlParameter<string>("policy_type", count.PolicyType));
            command.Parameters.Add(new NpgsqlParameter<string>("policy_strings", count.PolicyStrings));
            command.Parameters.Add(new NpgsqlParameter<string>("result_type", count.ResultType));
            command.Parameters.Add(new NpgsqlParameter<string>("mx_host", count.MxHost));
            command.Parameters.Add(new NpgsqlParameter<string>("receiving_ip", count.ReceivingIp));
            command.Parameters.Add(new NpgsqlParameter<string>("detail", count.Detail));
            command.Parameters.Add(new NpgsqlParameter<long>("count", count.Count));
            batch.BatchCommands.Add(command);
        }

        if (batch.BatchCommands.Count > 0)
        {
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    public async Task<IReadOnlyList<string>> UnsentDomainsAsync(DateOnly day, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(UnsentSql);
        command.Parameters.Add(new NpgsqlParameter<DateOnly>("day", day));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var domains = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            domains.Add(reader.GetString(0));
        }

        return domains;
    }

    public async Task<IReadOnlyList<TlsReportCount>> ReadAsync(DateOnly day, string domain, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReadSql);
        command.Parameters.Add(new NpgsqlParameter<DateOnly>("day", day));
        command.Parameters.Add(new NpgsqlParameter<string>("domain", domain));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var counts = new List<TlsReportCount>();
        while (await reader.ReadAsync(cancellationToken))
        {
            counts.Add(TlsReportCount.Read(reader, day, domain));
        }

        return counts;
    }

    public async Task<bool> ClaimAsync(DateOnly day, string domain, string reportId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ClaimSql);
        command.Parameters.Add(new NpgsqlParameter<DateOnly>("day", day));
        command.Parameters.Add(new NpgsqlParameter<string>("domain", domain));
        command.Parameters.Add(new NpgsqlParameter<string>("report_id", reportId));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", StoreArguments.Truncate(now)));
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    public async Task ReleaseAsync(DateOnly day, string domain, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReleaseSql);
        command.Parameters.Add(new NpgsqlParameter<DateOnly>("day", day));
        command.Parameters.Add(new NpgsqlParameter<string>("domain", domain));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task PruneAsync(DateOnly before, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(PruneSql);
        command.Parameters.Add(new NpgsqlParameter<DateOnly>("before", before));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
