using System.Xml.Linq;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// <see cref="IAdminLoginStore"/> over spool.admin_ui_login_failures: a failure is one <c>INSERT ... ON CONFLICT DO
/// UPDATE</c>, which PostgreSQL runs under the row's lock, so concurrent failures from any number of replicas each count.
/// </summary>
public sealed class PostgresAdminLoginStore(NpgsqlDataSource dataSource) : IAdminLoginStore
{
    private const string LockedSql =
        """
        SELECT locked_until FROM spool.admin_ui_login_failures WHERE name = @name AND locked_until > @now
        """;

    // "restart": a lockout that has ended, or a last failure older than ForgetAfter, starts the count again at 1.
    private const string FailureSql =
        """
        INSERT INTO spool.admin_ui_login_failures AS f (name, failures, locked_until, last_failed_at)
        VALUES (@name, 1, CASE WHEN @max <= 1 THEN @lock_until END, @now)
        ON CONFLICT (name) DO UPDATE SET
            failures = CASE WHEN f.locked_until <= @now OR f.last_failed_at < @forget_before THEN 1 ELSE f.failures + 1 END,
            locked_until = CASE
                WHEN f.locked_until > @now THEN f.locked_until
                WHEN (CASE WHEN f.locked_until <= @now OR f.last_failed_at < @forget_before THEN 1 ELSE f.failures + 1 END) >= @max
                    THEN @lock_until
            END,
            last_failed_at = @now
        RETURNING failures, locked_until
        """;

    private const string ClearSql = "DELETE FROM spool.admin_ui_login_failures WHERE name = @name";

    private const string PruneSql =
        """
        DELETE FROM spool.admin_ui_login_failures
        WHERE last_failed_at < @forget_before AND (locked_until IS NULL OR locked_until <= @now)
        """;

    /// <inheritdoc />
    public async Task<DateTimeOffset?> GetLockedUntilAsync(string name, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(LockedSql);
        command.Parameters.Add(new NpgsqlParameter<string>("name", AdminLogins.Key(name)));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now.ToUniversalTime()));
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime until
            ? new DateTimeOffset(DateTime.SpecifyKind(until, DateTimeKind.Utc))
            : null;
    }

    /// <inheritdoc />
    public async Task<AdminLoginFailures> RecordFailureAsync(string name, DateTimeOffset now, int maxFailures, TimeSpan lockout, CancellationToken cancellationToken)
    {
        AdminLogins.CheckLimits(maxFailures, lockout);
        await using var command = dataSource.CreateCommand(FailureSql);
        command.Parameters.Add(new NpgsqlParameter<string>("name", AdminLogins.Key(name)));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now.ToUniversalTime()));
        command.Parameters.Add(new NpgsqlParameter<int>("max", maxFailures));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("lock_until", (now + lockout).ToUniversalTime()));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("forget_before", (now - AdminLogins.ForgetAfter).ToUniversalTime()));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new AdminLoginFailures(reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetFieldValue<DateTimeOffset>(1));
    }

    /// <inheritdoc />
    public async Task ClearFailuresAsync(string name, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ClearSql);
        command.Parameters.Add(new NpgsqlParameter<string>("name", AdminLogins.Key(name)));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <inheritdoc />
    public async Task<int> PruneFailuresAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(PruneSql);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now.ToUniversalTime()));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("forget_before", (now - AdminLogins.ForgetAfter).ToUniversalTime()));
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>
/// <see cref="IAdminUiKeyStore"/> over spool.admin_ui_keys. Data Protection calls <see cref="Microsoft.AspNetCore.DataProtection.Repositories.IXmlRepository"/>
/// synchronously (when it loads or refreshes its key ring, and when it makes a key: rarely), hence the synchronous calls.
/// </summary>
public sealed class PostgresAdminUiKeyStore(NpgsqlDataSource dataSource) : IAdminUiKeyStore
{
    /// <summary>The advisory lock key: the ASCII bytes of "MMUiKeys" as a bigint (the migrator's is "MailMesh").</summary>
    internal const long LockKey = 0x4D4D_5569_4B65_7973;

    /// <inheritdoc />
    public IReadOnlyCollection<XElement> GetAllElements()
    {
        using var command = dataSource.CreateCommand("SELECT xml FROM spool.admin_ui_keys ORDER BY id");
        using var reader = command.ExecuteReader();
        return AdminLogins.ReadElements(reader);
    }

    /// <inheritdoc />
    public void StoreElement(XElement element, string friendlyName)
    {
        ArgumentNullException.ThrowIfNull(element);
        using var command = dataSource.CreateCommand("INSERT INTO spool.admin_ui_keys (friendly_name, xml) VALUES (@friendly_name, @xml)");
        command.Parameters.Add(new NpgsqlParameter("friendly_name", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)friendlyName ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<string>("xml", element.ToString(SaveOptions.DisableFormatting)));
        command.ExecuteNonQuery();
    }

    /// <inheritdoc />
    public async Task<IAsyncDisposable> LockAsync(CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await using var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock(@key)", connection, transaction);
            command.Parameters.Add(new NpgsqlParameter<long>("key", LockKey));
            await command.ExecuteNonQueryAsync(cancellationToken);
            return new Held(connection, transaction);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>The lock's transaction: ending it (rollback: it wrote nothing) releases the lock.</summary>
    private sealed class Held(NpgsqlConnection connection, NpgsqlTransaction transaction) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await transaction.DisposeAsync();
            await connection.DisposeAsync();
        }
    }
}
