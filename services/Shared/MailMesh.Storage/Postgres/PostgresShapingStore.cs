using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// <see cref="ISiteActionStore"/> and <see cref="IShapingBudgetStore"/> over the <c>shaping</c> schema: every take is one
/// statement (one round trip), so the budgets hold across Delivery replicas at the cost of a round trip per connection
/// and per message.
/// </summary>
public sealed class PostgresShapingStore(NpgsqlDataSource dataSource) : ISiteActionStore, IShapingBudgetStore
{
    private readonly CounterPruneSchedule _prune = new();

    // A free slot is one with no live lease; the count keeps a lowered limit from letting more in than it allows while
    // slots above it are still held. Two takers racing for one slot: the loser's ON CONFLICT finds it live and returns
    // no row (it tries again).
    private const string TakeConnectionSql =
        """
        INSERT INTO shaping.connection_slots AS c (budget_key, slot, holder, expires_at)
        SELECT @key, s, @holder, @expires_at
        FROM generate_series(0, @limit - 1) AS s
        WHERE (SELECT count(*) FROM shaping.connection_slots AS x WHERE x.budget_key = @key AND x.expires_at > @now) < @limit
            AND NOT EXISTS (SELECT 1 FROM shaping.connection_slots AS x WHERE x.budget_key = @key AND x.slot = s AND x.expires_at > @now)
        ORDER BY (s + @offset) % @limit
        LIMIT 1
        ON CONFLICT (budget_key, slot) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE c.expires_at <= @now
        RETURNING slot
        """;

    // GCRA-like: the bucket refills by the time since its last take (never negative: clocks of replicas differ a little),
    // and may go into debt by at most max_wait × rate; the caller waits -tokens / rate before it uses its token.
    private const string TakeTokenSql =
        """
        INSERT INTO shaping.buckets AS b (budget_key, tokens, updated_at)
        VALUES (@key, @burst - 1, @now)
        ON CONFLICT (budget_key) DO UPDATE
        SET tokens = LEAST(@burst, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM (@now - b.updated_at))::double precision) * @rate) - 1,
            updated_at = GREATEST(b.updated_at, @now)
        WHERE LEAST(@burst, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM (@now - b.updated_at))::double precision) * @rate) - 1 >= -(@max_wait * @rate)
        RETURNING tokens
        """;

    private const string ListSql =
        """
        SELECT id, site, source_ip, kind, max_connections, messages_per_second, created_at, until, reason, created_by
        FROM shaping.site_actions WHERE until > @now ORDER BY created_at, id
        """;

    private const string AddSql =
        """
        INSERT INTO shaping.site_actions (id, site, source_ip, kind, max_connections, messages_per_second, created_at, until, reason, created_by)
        VALUES (@id, @site, @source_ip, @kind, @max_connections, @messages_per_second, @created_at, @until, @reason, @created_by)
        ON CONFLICT (id) DO NOTHING
        """;

    private const string CountHitSql =
        """
        INSERT INTO shaping.rule_hits AS h (hit_key, window_start, hits) VALUES (@key, @window_start, 1)
        ON CONFLICT (hit_key, window_start) DO UPDATE SET hits = h.hits + 1
        RETURNING hits
        """;

    public async Task<bool> TryTakeConnectionAsync(
        string budgetKey, int limit, Guid holder, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = dataSource.CreateCommand(TakeConnectionSql);
        command.Parameters.Add(new NpgsqlParameter<string>("key", budgetKey));
        command.Parameters.Add(new NpgsqlParameter<int>("limit", limit));
        command.Parameters.Add(new NpgsqlParameter<Guid>("holder", holder));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("expires_at", expiresAt));
        command.Parameters.Add(new NpgsqlParameter<int>("offset", (holder.GetHashCode() & int.MaxValue) % limit));
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }

    public async Task RenewConnectionsAsync(IReadOnlyCollection<Guid> holders, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(holders);
        if (holders.Count == 0)
        {
            return;
        }

        await using var command = dataSource.CreateCommand("UPDATE shaping.connection_slots SET expires_at = @expires_at WHERE holder = ANY(@holders)");
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("holders", [.. holders]));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("expires_at", expiresAt));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task ReleaseConnectionAsync(string budgetKey, Guid holder, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM shaping.connection_slots WHERE budget_key = @key AND holder = @holder");
        command.Parameters.Add(new NpgsqlParameter<string>("key", budgetKey));
        command.Parameters.Add(new NpgsqlParameter<Guid>("holder", holder));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<TimeSpan?> TryTakeTokenAsync(
        string budgetKey, double ratePerSecond, double burst, TimeSpan maxWait, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ratePerSecond);
        await using var command = dataSource.CreateCommand(TakeTokenSql);
        command.Parameters.Add(new NpgsqlParameter<string>("key", budgetKey));
        command.Parameters.Add(new NpgsqlParameter<double>("rate", ratePerSecond));
        command.Parameters.Add(new NpgsqlParameter<double>("burst", Math.Max(1, burst)));
        command.Parameters.Add(new NpgsqlParameter<double>("max_wait", maxWait.TotalSeconds));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
        var tokens = await command.ExecuteScalarAsync(cancellationToken);
        return tokens is double left ? (left >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-left / ratePerSecond)) : null;
    }

    public async Task<IReadOnlyList<SiteAction>> ListLiveAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ListSql);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
        var list = new List<SiteAction>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new SiteAction
            {
                Id = reader.GetGuid(0),
                Site = reader.GetString(1),
                SourceIp = reader.IsDBNull(2) ? null : reader.GetString(2),
                Kind = SiteActions.ParseKind(reader.GetString(3)),
                MaxConnections = reader.IsDBNull(4) ? null : reader.GetInt32(4),
                MessagesPerSecond = reader.IsDBNull(5) ? null : reader.GetDouble(5),
                CreatedAt = reader.GetFieldValue<DateTimeOffset>(6),
                Until = reader.GetFieldValue<DateTimeOffset>(7),
                Reason = reader.GetString(8),
                CreatedBy = reader.GetString(9),
            });
        }

        return list;
    }

    public async Task AddAsync(SiteAction action, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(action);
        await using var command = dataSource.CreateCommand(AddSql);
        var p = command.Parameters;
        p.Add(new NpgsqlParameter<Guid>("id", action.Id));
        p.Add(new NpgsqlParameter<string>("site", action.Site));
        p.Add(new NpgsqlParameter("source_ip", (object?)action.SourceIp ?? DBNull.Value) { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter<string>("kind", SiteActions.KindName(action.Kind)));
        p.Add(new NpgsqlParameter("max_connections", (object?)action.MaxConnections ?? DBNull.Value) { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
        p.Add(new NpgsqlParameter("messages_per_second", (object?)action.MessagesPerSecond ?? DBNull.Value) { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Double });
        p.Add(new NpgsqlParameter<DateTimeOffset>("created_at", action.CreatedAt));
        p.Add(new NpgsqlParameter<DateTimeOffset>("until", action.Until));
        p.Add(new NpgsqlParameter<string>("reason", action.Reason));
        p.Add(new NpgsqlParameter<string>("created_by", action.CreatedBy));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<bool> RemoveAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM shaping.site_actions WHERE id = @id");
        command.Parameters.Add(new NpgsqlParameter<Guid>("id", id));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async Task<long> CountHitAsync(string key, DateTimeOffset now, TimeSpan window, CancellationToken cancellationToken)
    {
        StoreArguments.CheckCounter(key, window);
        var windowStart = StoreArguments.FromUnixMs(StoreArguments.WindowStart(now, window));
        await using var batch = dataSource.CreateBatch();
        var count = new NpgsqlBatchCommand(CountHitSql);
        count.Parameters.Add(new NpgsqlParameter<string>("key", key));
        count.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("window_start", windowStart));
        batch.BatchCommands.Add(count);
        if (_prune.IsDue(now))
        {
            // Windows older than a day are no longer anyone's; site actions that ended a day ago neither.
            foreach (var sql in (ReadOnlySpan<string>)["DELETE FROM shaping.rule_hits WHERE window_start < @before", "DELETE FROM shaping.site_actions WHERE until < @before"])
            {
                var prune = new NpgsqlBatchCommand(sql);
                prune.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("before", now - TimeSpan.FromDays(1) - window));
                batch.BatchCommands.Add(prune);
            }
        }

        return (long)(await batch.ExecuteScalarAsync(cancellationToken))!;
    }
}
