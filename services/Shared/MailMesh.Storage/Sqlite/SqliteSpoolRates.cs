namespace MailMesh.Storage.Sqlite;

/// <summary><see cref="ISpoolRates"/> over SQLite (times are Unix milliseconds: a minute is a division).</summary>
public sealed class SqliteSpoolRates(SqliteDatabase database) : ISpoolRates
{
    private const string RatesSql =
        """
        SELECT (received_at / 60000) * 60000 AS minute, -1 AS state, count(*)
        FROM spool_messages
        WHERE received_at >= @since
        GROUP BY 1
        UNION ALL
        SELECT (attempted_at / 60000) * 60000, state, count(*)
        FROM spool_attempts
        WHERE attempted_at >= @since AND state IN (2, 3, 4, 5)
        GROUP BY 1, 2
        """;

    public async Task<IReadOnlyList<MinuteCounts>> CountPerMinuteAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = RatesSql;
        command.Parameters.AddWithValue("@since", StoreArguments.ToUnixMs(since));
        var rows = new List<(DateTimeOffset, int, long)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add((DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(0)), reader.GetInt32(1), reader.GetInt64(2)));
        }

        return MinuteCountsFolder.Fold(rows);
    }
}
