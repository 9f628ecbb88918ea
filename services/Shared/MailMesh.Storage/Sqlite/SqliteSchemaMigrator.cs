using Microsoft.Extensions.Logging;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// Applies the embedded SQLite migrations as one write operation of <see cref="SqliteDatabase.WriteAsync{T}"/>, in a
/// <c>BEGIN IMMEDIATE</c> transaction: the write lock serialises concurrent migrators (in this process through the
/// database's writer, across processes through SQLite's file lock), and a failed migration is rolled back to its
/// savepoint, leaving the file as it was.
/// </summary>
public sealed partial class SqliteSchemaMigrator(SqliteDatabase database, ILogger<SqliteSchemaMigrator> logger) : ISchemaMigrator
{
    private static readonly IReadOnlyList<Migration> Migrations = Migration.Load("Sqlite");

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        // Sized as a large operation: a migration may rewrite whole tables (0024 rewrites every message row), so its
        // batch journals to a file rather than holding every page it changed in memory.
        var count = await database.WriteAsync(ApplyAsync, SqliteDatabase.LargeOperationBytes, cancellationToken);
        LogUpToDate(logger, Migrations[^1].Version, count, database.Path);
    }

    /// <summary>Applies the migrations not yet recorded; returns how many. Runs to completion once started.</summary>
    private async Task<int> ApplyAsync(SqliteWrite write)
    {
        await using (var command = write.CreateCommand(
            """
            CREATE TABLE IF NOT EXISTS mailmesh_migrations (
                version     INTEGER NOT NULL PRIMARY KEY,
                name        TEXT    NOT NULL,
                checksum    TEXT    NOT NULL,
                applied_at  INTEGER NOT NULL
            )
            """))
        {
            await command.ExecuteNonQueryAsync(CancellationToken.None);
        }

        var applied = new HashSet<long>();
        await using (var command = write.CreateCommand("SELECT version FROM mailmesh_migrations"))
        await using (var reader = await command.ExecuteReaderAsync(CancellationToken.None))
        {
            while (await reader.ReadAsync(CancellationToken.None))
            {
                applied.Add(reader.GetInt64(0));
            }
        }

        var count = 0;
        foreach (var migration in Migrations)
        {
            if (applied.Contains(migration.Version))
            {
                continue;
            }

            await using (var command = write.CreateCommand(migration.Sql))
            {
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }

            await using (var command = write.CreateCommand(
                "INSERT INTO mailmesh_migrations (version, name, checksum, applied_at) VALUES (@version, @name, @checksum, @applied_at)"))
            {
                command.Add("@version", migration.Version);
                command.Add("@name", migration.Name);
                command.Add("@checksum", migration.Checksum);
                command.Add("@applied_at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }

            LogApplied(logger, migration.Version, migration.Name, database.Path);
            count++;
        }

        return count;
    }

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Applied SQLite migration {Version} ({Name}) to {Path}")]
    private static partial void LogApplied(ILogger logger, int version, string name, string path);

    [LoggerMessage(EventId = 12, Level = LogLevel.Information, Message = "SQLite schema of {Path} at version {Version} ({Count} migrations applied now)")]
    private static partial void LogUpToDate(ILogger logger, int version, int count, string path);
}
