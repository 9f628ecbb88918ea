using Microsoft.Extensions.Logging;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// Applies the embedded PostgreSQL migrations that the database has not seen yet. Everything runs in one
/// transaction that first takes a transaction-scoped advisory lock, so any number of migrators (Helm hook,
/// compose one-shot, several replicas starting together) can run at once: one applies, the others wait for it
/// and then find nothing to do. A failed migration rolls back completely. After the commit, back-fills recorded by a
/// migration (<see cref="PostgresBackfill"/>) run in batches of their own.
/// </summary>
public sealed partial class PostgresSchemaMigrator(NpgsqlDataSource dataSource, ILogger<PostgresSchemaMigrator> logger) : ISchemaMigrator
{
    /// <summary>The advisory lock key: the ASCII bytes of "MailMesh" as a bigint, so it is unlikely to collide.</summary>
    internal const long LockKey = 0x4D61_696C_4D65_7368;

    private static readonly IReadOnlyList<Migration> Migrations = Migration.Load("Postgres");

    /// <summary>The highest schema version this build knows.</summary>
    public static int LatestVersion => Migrations[^1].Version;

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        await using (var command = new NpgsqlCommand(
            """
            SELECT pg_advisory_xact_lock(@key);
            CREATE TABLE IF NOT EXISTS public.mailmesh_migrations (
                version     integer     PRIMARY KEY,
                name        text        NOT NULL,
                checksum    text        NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            );
            """, connection, transaction))
        {
            command.Parameters.AddWithValue("key", LockKey);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        // Read after the lock is held: in READ COMMITTED this statement sees what a migrator that held the lock
        // before us committed.
        var applied = new Dictionary<int, string>();
        await using (var command = new NpgsqlCommand("SELECT version, checksum FROM public.mailmesh_migrations", connection, transaction))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                applied[reader.GetInt32(0)] = reader.GetString(1);
            }
        }

        var count = 0;
        foreach (var migration in Migrations)
        {
            if (applied.TryGetValue(migration.Version, out var checksum))
            {
                if (!string.Equals(checksum, migration.Checksum, StringComparison.Ordinal))
                {
                    LogChecksumMismatch(logger, migration.Version, migration.Name);
                }

                continue;
            }

            await using (var command = new NpgsqlCommand(migration.Sql, connection, transaction))
            {
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            await using (var command = new NpgsqlCommand(
                "INSERT INTO public.mailmesh_migrations (version, name, checksum) VALUES (@version, @name, @checksum)",
                connection, transaction))
            {
                command.Parameters.AddWithValue("version", migration.Version);
                command.Parameters.AddWithValue("name", migration.Name);
                command.Parameters.AddWithValue("checksum", migration.Checksum);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            LogApplied(logger, migration.Version, migration.Name);
            count++;
        }

        await transaction.CommitAsync(cancellationToken);
        LogUpToDate(logger, LatestVersion, count);

        // Data changes too large for the migration's one transaction, in short transactions of their own (0022).
        await PostgresBackfill.RunAsync(dataSource, logger, cancellationToken);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Applied PostgreSQL migration {Version} ({Name})")]
    private static partial void LogApplied(ILogger logger, int version, string name);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "PostgreSQL schema at version {Version} ({Count} migrations applied now)")]
    private static partial void LogUpToDate(ILogger logger, int version, int count);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "PostgreSQL migration {Version} ({Name}) was applied from a different script; it is not re-applied")]
    private static partial void LogChecksumMismatch(ILogger logger, int version, string name);
}
