using System.Xml.Linq;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// <see cref="IAdminLoginStore"/> over spool_admin_ui_login_failures: a failure is one upsert in a write transaction
/// (SQLite has one writer at a time), with the same rules as the PostgreSQL store.
/// </summary>
public sealed class SqliteAdminLoginStore(SqliteDatabase database) : IAdminLoginStore
{
    private const string Table = "spool_admin_ui_login_failures";

    private const string LockedSql = $"SELECT locked_until FROM {Table} WHERE name = @name AND locked_until > @now";

    // "restart": a lockout that has ended, or a last failure older than ForgetAfter, starts the count again at 1.
    private const string FailureSql =
        $"""
        INSERT INTO {Table} (name, failures, locked_until, last_failed_at)
        VALUES (@name, 1, CASE WHEN @max <= 1 THEN @lock_until END, @now)
        ON CONFLICT (name) DO UPDATE SET
            failures = CASE WHEN {Table}.locked_until <= @now OR {Table}.last_failed_at < @forget_before THEN 1 ELSE {Table}.failures + 1 END,
            locked_until = CASE
                WHEN {Table}.locked_until > @now THEN {Table}.locked_until
                WHEN (CASE WHEN {Table}.locked_until <= @now OR {Table}.last_failed_at < @forget_before THEN 1 ELSE {Table}.failures + 1 END) >= @max
                    THEN @lock_until
            END,
            last_failed_at = @now
        RETURNING failures, locked_until
        """;

    private const string ClearSql = $"DELETE FROM {Table} WHERE name = @name";

    private const string PruneSql =
        $"DELETE FROM {Table} WHERE last_failed_at < @forget_before AND (locked_until IS NULL OR locked_until <= @now)";

    /// <inheritdoc />
    public async Task<DateTimeOffset?> GetLockedUntilAsync(string name, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var key = AdminLogins.Key(name);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = LockedSql;
        command.Add("@name", key);
        command.Add("@now", StoreArguments.ToUnixMs(now));
        return await command.ExecuteScalarAsync(cancellationToken) is long until ? StoreArguments.FromUnixMs(until) : null;
    }

    /// <inheritdoc />
    public Task<AdminLoginFailures> RecordFailureAsync(string name, DateTimeOffset now, int maxFailures, TimeSpan lockout, CancellationToken cancellationToken)
    {
        AdminLogins.CheckLimits(maxFailures, lockout);
        var key = AdminLogins.Key(name);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(FailureSql);
            command.Add("@name", key);
            command.Add("@now", StoreArguments.ToUnixMs(now));
            command.Add("@max", maxFailures);
            command.Add("@lock_until", StoreArguments.ToUnixMs(now + lockout));
            command.Add("@forget_before", StoreArguments.ToUnixMs(now - AdminLogins.ForgetAfter));
            await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
            await reader.ReadAsync(CancellationToken.None);
            return new AdminLoginFailures(reader.GetInt32(0), reader.NullableTimestamp(1));
        }, 0, cancellationToken);
    }

    /// <inheritdoc />
    public Task ClearFailuresAsync(string name, CancellationToken cancellationToken)
    {
        var key = AdminLogins.Key(name);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(ClearSql);
            command.Add("@name", key);
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);
    }

    /// <inheritdoc />
    public Task<int> PruneFailuresAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(PruneSql);
            command.Add("@now", StoreArguments.ToUnixMs(now));
            command.Add("@forget_before", StoreArguments.ToUnixMs(now - AdminLogins.ForgetAfter));
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);
}

/// <summary>
/// <see cref="IAdminUiKeyStore"/> over spool_admin_ui_keys. Data Protection calls it synchronously and rarely (key ring
/// loads and refreshes, a new key every 90 days); SQLite's calls complete synchronously or on its writer loop.
/// </summary>
public sealed class SqliteAdminUiKeyStore(SqliteDatabase database, TimeProvider time) : IAdminUiKeyStore
{
    /// <inheritdoc />
    public IReadOnlyCollection<XElement> GetAllElements()
    {
        using var connection = database.OpenAsync(CancellationToken.None).GetAwaiter().GetResult();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT xml FROM spool_admin_ui_keys ORDER BY id";
        using var reader = command.ExecuteReader();
        return AdminLogins.ReadElements(reader);
    }

    /// <inheritdoc />
    public void StoreElement(XElement element, string friendlyName)
    {
        ArgumentNullException.ThrowIfNull(element);
        var xml = element.ToString(SaveOptions.DisableFormatting);
        var at = StoreArguments.ToUnixMs(time.GetUtcNow());
        database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand("INSERT INTO spool_admin_ui_keys (friendly_name, xml, created_at) VALUES (@friendly_name, @xml, @at)");
            command.Add("@friendly_name", friendlyName);
            command.Add("@xml", xml);
            command.Add("@at", at);
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, xml.Length, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    /// <remarks>SQLite is Standalone's one process: there is no other replica to wait for.</remarks>
    public Task<IAsyncDisposable> LockAsync(CancellationToken cancellationToken) => Task.FromResult<IAsyncDisposable>(NoLock.Instance);

    private sealed class NoLock : IAsyncDisposable
    {
        public static readonly NoLock Instance = new();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
