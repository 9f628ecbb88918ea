using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// The suppression list and rate counters in PostgreSQL (schema <c>policy</c>), shared by every Policy replica. A
/// suppression lookup asks the table only about an address that <see cref="PostgresSuppressionFilter"/> says may be on it.
/// </summary>
public sealed class PostgresPolicyStore(NpgsqlDataSource dataSource, ILogger? logger = null) : IPolicyStore, IAsyncDisposable, IDisposable
{
    private const string GetSql =
        "SELECT address, reason, created_at, source, expires_at FROM policy.suppressions WHERE address = @address";

    // A second suppression of the same address keeps the first time it was suppressed and the latest reason, source
    // and expiry.
    private const string AddSql =
        """
        INSERT INTO policy.suppressions (address, reason, created_at, source, expires_at)
        VALUES (@address, @reason, @created_at, @source, @expires_at)
        ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, source = excluded.source, expires_at = excluded.expires_at
        """;

    private const string RemoveSql = "DELETE FROM policy.suppressions WHERE address = @address";

    private const string ListSql =
        "SELECT address, reason, created_at, source, expires_at FROM policy.suppressions ORDER BY created_at DESC, address LIMIT @limit";

    // One statement: concurrent increments of one key serialise on the row, each sees the other's count.
    private const string IncrementSql =
        """
        INSERT INTO policy.counters AS c (key, window_start, count, expires_at)
        VALUES (@key, @window_start, @amount, @expires_at)
        ON CONFLICT (key, window_start) DO UPDATE SET count = c.count + excluded.count
        RETURNING count
        """;

    private const string PruneSql =
        """
        DELETE FROM policy.counters
        WHERE (key, window_start) IN (
            SELECT key, window_start FROM policy.counters WHERE expires_at <= @now LIMIT 10000)
        """;

    private readonly CounterPruneSchedule _prune = new();
    private readonly PostgresSuppressionFilter _filter = new(dataSource, logger ?? NullLogger.Instance);

    private long _lookups;

    /// <summary>The in-memory filter in front of the suppression lookups (tests watch it).</summary>
    internal PostgresSuppressionFilter Filter => _filter;

    /// <summary>Suppression lookups that went to the table.</summary>
    internal long Lookups => Interlocked.Read(ref _lookups);

    public async Task<Suppression?> GetSuppressionAsync(string address, CancellationToken cancellationToken)
    {
        var key = StoreArguments.SuppressionKey(address);
        if (!_filter.MayContain(key))
        {
            return null;
        }

        Interlocked.Increment(ref _lookups);
        await using var command = dataSource.CreateCommand(GetSql);
        command.Parameters.Add(new NpgsqlParameter<string>("address", key));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    public async Task AddSuppressionAsync(Suppression suppression, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(suppression);
        var key = StoreArguments.SuppressionKey(suppression.Address);
        await using var command = dataSource.CreateCommand(AddSql);
        command.Parameters.Add(new NpgsqlParameter<string>("address", key));
        command.Parameters.Add(new NpgsqlParameter<string>("reason", suppression.Reason));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("created_at", StoreArguments.Truncate(suppression.CreatedAt)));
        command.Parameters.Add(new NpgsqlParameter<string>("source", suppression.Source));
        command.Parameters.Add(new NpgsqlParameter("expires_at", NpgsqlTypes.NpgsqlDbType.TimestampTz)
        {
            Value = suppression.ExpiresAt is { } expires ? StoreArguments.Truncate(expires) : DBNull.Value,
        });
        await command.ExecuteNonQueryAsync(cancellationToken);

        // Committed: this process's next lookup sees it now; other processes hear of it from the trigger's notification.
        _filter.Added(key);
    }

    public async Task<bool> RemoveSuppressionAsync(string address, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(RemoveSql);
        command.Parameters.Add(new NpgsqlParameter<string>("address", StoreArguments.SuppressionKey(address)));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async Task<IReadOnlyList<Suppression>> ListSuppressionsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        var list = new List<Suppression>(Math.Min(limit, 1024));
        await using var command = dataSource.CreateCommand(ListSql);
        command.Parameters.Add(new NpgsqlParameter<int>("limit", limit));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(Read(reader));
        }

        return list;
    }

    public async Task<long> IncrementCounterAsync(string key, DateTimeOffset now, TimeSpan window, long amount, CancellationToken cancellationToken)
    {
        StoreArguments.CheckCounter(key, window);
        var windowStart = StoreArguments.WindowStart(now, window);

        long count;
        await using (var command = dataSource.CreateCommand(IncrementSql))
        {
            command.Parameters.Add(new NpgsqlParameter<string>("key", key));
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("window_start", StoreArguments.FromUnixMs(windowStart)));
            command.Parameters.Add(new NpgsqlParameter<long>("amount", amount));
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("expires_at", StoreArguments.FromUnixMs(windowStart + (long)window.TotalMilliseconds)));
            count = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        if (_prune.IsDue(now))
        {
            await using var command = dataSource.CreateCommand(PruneSql);
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", StoreArguments.Truncate(now)));
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        return count;
    }

    private static Suppression Read(NpgsqlDataReader reader) => new()
    {
        Address = reader.GetString(0),
        Reason = reader.GetString(1),
        CreatedAt = reader.GetFieldValue<DateTimeOffset>(2),
        Source = reader.GetString(3),
        ExpiresAt = reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4),
    };

    public ValueTask DisposeAsync() => _filter.DisposeAsync();

    public void Dispose() => _filter.Dispose();
}
