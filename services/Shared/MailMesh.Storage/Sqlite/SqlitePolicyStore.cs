using Microsoft.Data.Sqlite;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// The suppression list and rate counters in the Standalone SQLite file. Writes are operations of
/// <see cref="SqliteDatabase.WriteAsync{T}"/> (group commit); a counter's new total is returned only after the
/// increment is committed, so concurrent increments see distinct totals.
/// </summary>
public sealed class SqlitePolicyStore(SqliteDatabase database) : IPolicyStore
{
    private const string GetSql =
        "SELECT address, reason, created_at, source, expires_at FROM policy_suppressions WHERE address = @address";

    private const string AddSql =
        """
        INSERT INTO policy_suppressions (address, reason, created_at, source, expires_at)
        VALUES (@address, @reason, @created_at, @source, @expires_at)
        ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, source = excluded.source, expires_at = excluded.expires_at
        """;

    private const string RemoveSql = "DELETE FROM policy_suppressions WHERE address = @address";

    private const string ListSql =
        "SELECT address, reason, created_at, source, expires_at FROM policy_suppressions ORDER BY created_at DESC, address LIMIT @limit";

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
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    public Task AddSuppressionAsync(Suppression suppression, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(suppression);
        var key = StoreArguments.SuppressionKey(suppression.Address);
        var createdAt = StoreArguments.ToUnixMs(suppression.CreatedAt);
        long? expiresAt = suppression.ExpiresAt is { } expires ? StoreArguments.ToUnixMs(expires) : null;
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(AddSql);
            command.Add("@address", key);
            command.Add("@reason", suppression.Reason);
            command.Add("@created_at", createdAt);
            command.Add("@source", suppression.Source);
            command.Add("@expires_at", expiresAt);
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);
    }

    public Task<bool> RemoveSuppressionAsync(string address, CancellationToken cancellationToken)
    {
        var key = StoreArguments.SuppressionKey(address);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(RemoveSql);
            command.Add("@address", key);
            return await command.ExecuteNonQueryAsync(CancellationToken.None) > 0;
        }, 0, cancellationToken);
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
            list.Add(Read(reader));
        }

        return list;
    }

    public Task<long> IncrementCounterAsync(string key, DateTimeOffset now, TimeSpan window, long amount, CancellationToken cancellationToken)
    {
        StoreArguments.CheckCounter(key, window);
        var windowStart = StoreArguments.WindowStart(now, window);
        var expiresAt = windowStart + (long)window.TotalMilliseconds;
        long? pruneBefore = _prune.IsDue(now) ? StoreArguments.ToUnixMs(now) : null;

        return database.WriteAsync(async write =>
        {
            long count;
            await using (var command = write.CreateCommand(IncrementSql))
            {
                command.Add("@key", key);
                command.Add("@window_start", windowStart);
                command.Add("@amount", amount);
                command.Add("@expires_at", expiresAt);
                count = (long)(await command.ExecuteScalarAsync(CancellationToken.None))!;
            }

            if (pruneBefore is { } cutoff)
            {
                await using var command = write.CreateCommand(PruneSql);
                command.Add("@now", cutoff);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return count;
        }, 0, cancellationToken);
    }

    private static Suppression Read(SqliteDataReader reader) => new()
    {
        Address = reader.GetString(0),
        Reason = reader.GetString(1),
        CreatedAt = reader.Timestamp(2),
        Source = reader.GetString(3),
        ExpiresAt = reader.NullableTimestamp(4),
    };
}
