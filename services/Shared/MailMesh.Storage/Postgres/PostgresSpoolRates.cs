using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary><see cref="ISpoolRates"/> over PostgreSQL: range scans of messages_received and attempts_attempted_at.</summary>
public sealed class PostgresSpoolRates(NpgsqlDataSource dataSource) : ISpoolRates
{
    private const string RatesSql =
        """
        SELECT date_trunc('minute', received_at AT TIME ZONE 'UTC') AS minute, -1 AS state, count(*)
        FROM spool.messages
        WHERE received_at >= @since
        GROUP BY 1
        UNION ALL
        SELECT date_trunc('minute', attempted_at AT TIME ZONE 'UTC'), state, count(*)
        FROM spool.attempts
        WHERE attempted_at >= @since AND state IN (2, 3, 4, 5)
        GROUP BY 1, 2
        """;

    public async Task<IReadOnlyList<MinuteCounts>> CountPerMinuteAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(RatesSql);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("since", since.ToUniversalTime()));
        var rows = new List<(DateTimeOffset, int, long)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var minute = DateTime.SpecifyKind(reader.GetDateTime(0), DateTimeKind.Utc);
            rows.Add((new DateTimeOffset(minute), reader.GetInt32(1), reader.GetInt64(2)));
        }

        return MinuteCountsFolder.Fold(rows);
    }
}
