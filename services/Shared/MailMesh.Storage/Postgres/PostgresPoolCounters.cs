using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>The warm-up counters in PostgreSQL (<c>spool.pool_counters</c>), shared by every Delivery replica.</summary>
public sealed class PostgresPoolCounters(NpgsqlDataSource dataSource) : IPoolCounters
{
    // One statement: concurrent takes of one address serialise on its row; the update is skipped (no row returned) once
    // the count has reached the cap.
    private const string TakeSql =
        """
        INSERT INTO spool.pool_counters AS c (address, day, sent)
        VALUES (@address, @day, 1)
        ON CONFLICT (address, day) DO UPDATE SET sent = c.sent + 1 WHERE c.sent < @cap
        RETURNING sent
        """;

    private const string CountSql = "SELECT sent FROM spool.pool_counters WHERE address = @address AND day = @day";

    // Days older than a week are of no use to any cap; deleted now and then by a take.
    private const string PruneSql = "DELETE FROM spool.pool_counters WHERE day < @before";

    private readonly CounterPruneSchedule _prune = new();

    public async Task<bool> TryTakeAsync(string address, DateOnly day, long cap, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(address);
        if (cap <= 0)
        {
            return false;
        }

        bool taken;
        await using (var command = dataSource.CreateCommand(TakeSql))
        {
            command.Parameters.Add(new NpgsqlParameter<string>("address", address));
            command.Parameters.Add(new NpgsqlParameter<DateOnly>("day", day));
            command.Parameters.Add(new NpgsqlParameter<long>("cap", cap));
            taken = await command.ExecuteScalarAsync(cancellationToken) is not null;
        }

        if (_prune.IsDue(new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)))
        {
            await using var command = dataSource.CreateCommand(PruneSql);
            command.Parameters.Add(new NpgsqlParameter<DateOnly>("before", day.AddDays(-7)));
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        return taken;
    }

    public async Task<long> CountAsync(string address, DateOnly day, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(CountSql);
        command.Parameters.Add(new NpgsqlParameter<string>("address", address));
        command.Parameters.Add(new NpgsqlParameter<DateOnly>("day", day));
        return await command.ExecuteScalarAsync(cancellationToken) is long sent ? sent : 0;
    }
}
