namespace MailMesh.Storage.Sqlite;

/// <summary>The warm-up counters in the Standalone SQLite file (<c>spool_pool_counters</c>); days are DateOnly.DayNumber.</summary>
public sealed class SqlitePoolCounters(SqliteDatabase database) : IPoolCounters
{
    private const string TakeSql =
        """
        INSERT INTO spool_pool_counters (address, day, sent)
        VALUES (@address, @day, 1)
        ON CONFLICT (address, day) DO UPDATE SET sent = sent + 1 WHERE sent < @cap
        RETURNING sent
        """;

    private const string CountSql = "SELECT sent FROM spool_pool_counters WHERE address = @address AND day = @day";

    private const string PruneSql = "DELETE FROM spool_pool_counters WHERE day < @before";

    private readonly CounterPruneSchedule _prune = new();

    public Task<bool> TryTakeAsync(string address, DateOnly day, long cap, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(address);
        if (cap <= 0)
        {
            return Task.FromResult(false);
        }

        var prune = _prune.IsDue(new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero));
        return database.WriteAsync(async write =>
        {
            bool taken;
            await using (var command = write.CreateCommand(TakeSql))
            {
                command.Add("@address", address);
                command.Add("@day", (long)day.DayNumber);
                command.Add("@cap", cap);
                taken = await command.ExecuteScalarAsync(CancellationToken.None) is not null;
            }

            if (prune)
            {
                await using var command = write.CreateCommand(PruneSql);
                command.Add("@before", (long)day.DayNumber - 7);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return taken;
        }, 0, cancellationToken);
    }

    public async Task<long> CountAsync(string address, DateOnly day, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = CountSql;
        command.Add("@address", address);
        command.Add("@day", (long)day.DayNumber);
        return await command.ExecuteScalarAsync(cancellationToken) is long sent ? sent : 0;
    }
}
