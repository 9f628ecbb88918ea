namespace MailMesh.Storage.Sqlite;

/// <summary>The suppression list and rate counters in the Standalone SQLite file.</summary>
public sealed class SqlitePolicyStore(SqliteDatabase database) : IPolicyStore
{
    private const string GetSql = "SELECT address, reason, created_at FROM policy_suppressions WHERE address = @address";

    private const string AddSql =
        """
        INSERT INTO policy_suppressions (address, reason, created_at)
        VALUES (@address, @reason, @created_at)
        ON CONFLICT (address) DO UPDATE SET reason = excluded.reason
        """;

    private const string RemoveSql = "DELETE FROM policy_suppressions WHERE address = @address";

    private const string ListSql =
        "SELECT address, reason, created_at FROM policy_suppressions ORDER BY created_at DESC, address LIMIT @limit";

    private const string IncrementSql =
        """
        INSERT INTO policy_counters (key, window_start, count, expires_at)
        VALUES (@key, @window_start, @amount, @expires_at)
        ON CONFLICT (key, window_start) DO UPDATE SET count = count + excluded.count
        RETURNING count
        """;

    private const string PruneSql =
        """
        DELETE FROM policy_counters
        WHERE (key, window_start) IN (SELECT key, window_start FROM policy_counters WHERE expires_at <= @now LIMIT 10000)
        """;

    private readonly CounterPruneSchedule _prune = new();

    public async Task<Suppression?> GetSuppressionAsync(string address, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = GetSql;
        command.Add("@address", StoreArguments.SuppressionKey(address));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new Suppression { Address = reader.GetString(0), Reason = reader.GetString(1), CreatedAt = reader.Timestamp(2) }
            : null;
    }

    public async Task AddSuppressionAsync(Suppression suppression, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(suppression);
        var key = StoreArguments.SuppressionKey(suppression.Address);
        await using var write = await database.BeginWriteAsync(cancellationToken);
        await using var command = write.CreateCommand(AddSql);
        command.Add("@address", key);
        command.Add("@reason", suppression.Reason);
        command.Add("@created_at", StoreArguments.ToUnixMs(suppression.CreatedAt));
        await command.ExecuteNonQueryAsync(cancellationToken);
        await write.CommitAsync(cancellationToken);
    }

    public async Task<bool> RemoveSuppressionAsync(string address, CancellationToken cancellationToken)
    {
        var key = StoreArguments.SuppressionKey(address);
        await using var write = await database.BeginWriteAsync(cancellationToken);
        await using var command = write.CreateCommand(RemoveSql);
        command.Add("@address", key);
        var removed = await command.ExecuteNonQueryAsync(cancellationToken) > 0;
        await write.CommitAsync(cancellationToken);
        return removed;
    }

    public async Task<IReadOnlyList<Suppression>> ListSuppressionsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        var list = new List<Suppression>(Math.Min(limit, 1024));
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = ListSql;
        command.Add("@limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new Suppression { Address = reader.GetString(0), Reason = reader.GetString(1), CreatedAt = reader.Timestamp(2) });
        }

        return list;
    }

    public async Task<long> IncrementCounterAsync(string key, DateTimeOffset now, TimeSpan window, long amount, CancellationToken cancellationToken)
    {
        StoreArguments.CheckCounter(key, window);
        var windowStart = StoreArguments.WindowStart(now, window);

        await using var write = await database.BeginWriteAsync(cancellationToken);
        long count;
        await using (var command = write.CreateCommand(IncrementSql))
        {
            command.Add("@key", key);
            command.Add("@window_start", windowStart);
            command.Add("@amount", amount);
            command.Add("@expires_at", windowStart + (long)window.TotalMilliseconds);
            count = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        if (_prune.IsDue(now))
        {
            await using var command = write.CreateCommand(PruneSql);
            command.Add("@now", StoreArguments.ToUnixMs(now));
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await write.CommitAsync(cancellationToken);
        return count;
    }
}
