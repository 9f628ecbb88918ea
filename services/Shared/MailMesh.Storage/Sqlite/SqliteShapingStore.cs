namespace MailMesh.Storage.Sqlite;

/// <summary>
/// <see cref="ISiteActionStore"/> over shaping_site_actions and shaping_rule_hits. (Standalone's budgets are in memory:
/// one process owns the file, so there is no <see cref="IShapingBudgetStore"/> here.)
/// </summary>
public sealed class SqliteShapingStore(SqliteDatabase database) : ISiteActionStore
{
    private readonly CounterPruneSchedule _prune = new();

    private const string CountHitSql =
        """
        INSERT INTO shaping_rule_hits (hit_key, window_start, hits) VALUES (@key, @window_start, 1)
        ON CONFLICT (hit_key, window_start) DO UPDATE SET hits = hits + 1
        RETURNING hits
        """;

    public async Task<IReadOnlyList<SiteAction>> ListLiveAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText =
            """
            SELECT id, site, source_ip, kind, max_connections, messages_per_second, created_at, until, reason, created_by
            FROM shaping_site_actions WHERE until > @now ORDER BY created_at, id
            """;
        command.Add("@now", StoreArguments.ToUnixMs(now));
        var list = new List<SiteAction>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new SiteAction
            {
                Id = Guid.Parse(reader.GetString(0)),
                Site = reader.GetString(1),
                SourceIp = reader.NullableString(2),
                Kind = SiteActions.ParseKind(reader.GetString(3)),
                MaxConnections = reader.IsDBNull(4) ? null : reader.GetInt32(4),
                MessagesPerSecond = reader.IsDBNull(5) ? null : reader.GetDouble(5),
                CreatedAt = reader.Timestamp(6),
                Until = reader.Timestamp(7),
                Reason = reader.GetString(8),
                CreatedBy = reader.GetString(9),
            });
        }

        return list;
    }

    public Task AddAsync(SiteAction action, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(action);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(
                """
                INSERT INTO shaping_site_actions (id, site, source_ip, kind, max_connections, messages_per_second, created_at, until, reason, created_by)
                VALUES (@id, @site, @source_ip, @kind, @max_connections, @messages_per_second, @created_at, @until, @reason, @created_by)
                ON CONFLICT (id) DO NOTHING
                """);
            command.Add("@id", action.Id.ToString());
            command.Add("@site", action.Site);
            command.Add("@source_ip", action.SourceIp);
            command.Add("@kind", SiteActions.KindName(action.Kind));
            command.Add("@max_connections", action.MaxConnections);
            command.Add("@messages_per_second", action.MessagesPerSecond);
            command.Add("@created_at", StoreArguments.ToUnixMs(action.CreatedAt));
            command.Add("@until", StoreArguments.ToUnixMs(action.Until));
            command.Add("@reason", action.Reason);
            command.Add("@created_by", action.CreatedBy);
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);
    }

    public async Task<bool> RemoveAsync(Guid id, CancellationToken cancellationToken) =>
        await database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand("DELETE FROM shaping_site_actions WHERE id = @id");
            command.Add("@id", id.ToString());
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken) > 0;

    public Task<long> CountHitAsync(string key, DateTimeOffset now, TimeSpan window, CancellationToken cancellationToken)
    {
        StoreArguments.CheckCounter(key, window);
        var windowStart = StoreArguments.WindowStart(now, window);
        long? pruneBefore = _prune.IsDue(now) ? StoreArguments.ToUnixMs(now - TimeSpan.FromDays(1) - window) : null;
        return database.WriteAsync(async write =>
        {
            long hits;
            await using (var command = write.CreateCommand(CountHitSql))
            {
                command.Add("@key", key);
                command.Add("@window_start", windowStart);
                hits = (long)(await command.ExecuteScalarAsync(CancellationToken.None))!;
            }

            if (pruneBefore is { } before)
            {
                await using var prune = write.CreateCommand(
                    "DELETE FROM shaping_rule_hits WHERE window_start < @before; DELETE FROM shaping_site_actions WHERE until < @before");
                prune.Add("@before", before);
                await prune.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return hits;
        }, 0, cancellationToken);
    }
}
