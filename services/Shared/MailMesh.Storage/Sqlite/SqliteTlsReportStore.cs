namespace MailMesh.Storage.Sqlite;

/// <summary>The TLS reporting aggregate in the Standalone SQLite file (one process: the claims are trivially its own).</summary>
public sealed class SqliteTlsReportStore(SqliteDatabase database) : ITlsReportStore
{
    private const string AddSql =
        """
        INSERT INTO spool_tls_report_counts
            (day, policy_domain, row_key, policy_type, policy_strings, result_type, mx_host, receiving_ip, detail, count)
        VALUES (@day, @domain, @row_key, @policy_type, @policy_strings, @result_type, @mx_host, @receiving_ip, @detail, @count)
        ON CONFLICT (day, policy_domain, row_key) DO UPDATE SET count = count + excluded.count
        """;

    private const string UnsentSql =
        """
        SELECT DISTINCT c.policy_domain FROM spool_tls_report_counts c
        WHERE c.day = @day AND NOT EXISTS (
            SELECT 1 FROM spool_tls_reports_sent s WHERE s.day = c.day AND s.policy_domain = c.policy_domain)
        ORDER BY 1
        """;

    private const string ReadSql =
        """
        SELECT policy_type, policy_strings, result_type, mx_host, receiving_ip, detail, count
        FROM spool_tls_report_counts WHERE day = @day AND policy_domain = @domain ORDER BY policy_type, row_key
        """;

    private const string ClaimSql =
        "INSERT INTO spool_tls_reports_sent (day, policy_domain, report_id, claimed_at) VALUES (@day, @domain, @report_id, @now) ON CONFLICT DO NOTHING";

    private const string ReleaseSql = "DELETE FROM spool_tls_reports_sent WHERE day = @day AND policy_domain = @domain";

    private static readonly string[] PruneSql =
    [
        "DELETE FROM spool_tls_report_counts WHERE day < @before",
        "DELETE FROM spool_tls_reports_sent WHERE day < @before",
    ];

    public Task AddAsync(IReadOnlyList<TlsReportCount> counts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(counts);
        return database.WriteAsync(async write =>
        {
            foreach (var count in counts)
            {
                await using var command = write.CreateCommand(AddSql);
                command.Add("@day", TlsReportCount.DayText(count.Day));
                command.Add("@domain", count.PolicyDomain);
                command.Add("@row_key", count.RowKey);
                command.Add("@policy_type", count.PolicyType);
                command.Add("@policy_strings", count.PolicyStrings);
                command.Add("@result_type", count.ResultType);
                command.Add("@mx_host", count.MxHost);
                command.Add("@receiving_ip", count.ReceivingIp);
                command.Add("@detail", count.Detail);
                command.Add("@count", count.Count);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return 0;
        }, 0, cancellationToken);
    }

    public async Task<IReadOnlyList<string>> UnsentDomainsAsync(DateOnly day, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = UnsentSql;
        command.Add("@day", TlsReportCount.DayText(day));
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
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = ReadSql;
        command.Add("@day", TlsReportCount.DayText(day));
        command.Add("@domain", domain);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var counts = new List<TlsReportCount>();
        while (await reader.ReadAsync(cancellationToken))
        {
            counts.Add(TlsReportCount.Read(reader, day, domain));
        }

        return counts;
    }

    public Task<bool> ClaimAsync(DateOnly day, string domain, string reportId, DateTimeOffset now, CancellationToken cancellationToken) =>
        database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(ClaimSql);
            command.Add("@day", TlsReportCount.DayText(day));
            command.Add("@domain", domain);
            command.Add("@report_id", reportId);
            command.Add("@now", StoreArguments.ToUnixMs(now));
            return await command.ExecuteNonQueryAsync(CancellationToken.None) == 1;
        }, 0, cancellationToken);

    public Task ReleaseAsync(DateOnly day, string domain, CancellationToken cancellationToken) =>
        database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(ReleaseSql);
            command.Add("@day", TlsReportCount.DayText(day));
            command.Add("@domain", domain);
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);

    public Task PruneAsync(DateOnly before, CancellationToken cancellationToken) =>
        database.WriteAsync(async write =>
        {
            var total = 0;
            foreach (var sql in PruneSql)
            {
                await using var command = write.CreateCommand(sql);
                command.Add("@before", TlsReportCount.DayText(before));
                total += await command.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return total;
        }, 0, cancellationToken);
}
