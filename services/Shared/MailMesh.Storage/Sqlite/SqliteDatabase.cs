using Microsoft.Data.Sqlite;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// One SQLite database file shared by <see cref="SqliteSpool"/>, <see cref="SqlitePolicyStore"/> and
/// <see cref="SqliteSchemaMigrator"/> in one process. Connections come from Microsoft.Data.Sqlite's pool and are
/// set up for durability: WAL journal (readers never block the writer), <c>synchronous=FULL</c> (every commit is
/// fsynced before it returns, so 250 means safe), foreign keys on, and a busy timeout for other processes.
/// SQLite allows one writer at a time; writers in this process queue on a semaphore instead of spinning on
/// SQLITE_BUSY, and each write is a <c>BEGIN IMMEDIATE</c> transaction, which takes the write lock up front.
/// </summary>
public sealed class SqliteDatabase : IDisposable
{
    private const string ConnectionPragmas =
        """
        PRAGMA busy_timeout = 30000;
        PRAGMA synchronous = FULL;
        PRAGMA foreign_keys = ON;
        """;

    private readonly SemaphoreSlim _writer = new(1, 1);
    private readonly string _connectionString;
    private int _walEnabled;

    /// <param name="path">The database file; its directory is created if missing.</param>
    public SqliteDatabase(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(Path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            ForeignKeys = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    /// <summary>The full path of the database file.</summary>
    public string Path { get; }

    /// <summary>A connection for reads. In WAL mode a read transaction sees one consistent snapshot.</summary>
    internal async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            if (Volatile.Read(ref _walEnabled) == 0)
            {
                // Persistent in the file; cannot run inside a transaction, so it is set here, once per process.
                await using var wal = connection.CreateCommand();
                wal.CommandText = "PRAGMA journal_mode = WAL";
                await wal.ExecuteNonQueryAsync(cancellationToken);
                Volatile.Write(ref _walEnabled, 1);
            }

            await using var pragmas = connection.CreateCommand();
            pragmas.CommandText = ConnectionPragmas;
            await pragmas.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits for this process's write turn, then opens a connection and begins an IMMEDIATE transaction.</summary>
    internal async Task<SqliteWrite> BeginWriteAsync(CancellationToken cancellationToken)
    {
        await _writer.WaitAsync(cancellationToken);
        SqliteConnection? connection = null;
        try
        {
            connection = await OpenAsync(cancellationToken);

            // deferred: false is BEGIN IMMEDIATE: the write lock is taken now, so the reads that decide what to
            // write (due recipients, lease checks) cannot be invalidated by another writer before we write.
            var transaction = connection.BeginTransaction(deferred: false);
            return new SqliteWrite(connection, transaction, _writer);
        }
        catch
        {
            if (connection is not null)
            {
                await connection.DisposeAsync();
            }

            _writer.Release();
            throw;
        }
    }

    public void Dispose()
    {
        using var connection = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(connection);
        _writer.Dispose();
    }
}

/// <summary>One write transaction and this process's write turn; rolled back on dispose unless committed.</summary>
internal sealed class SqliteWrite(SqliteConnection connection, SqliteTransaction transaction, SemaphoreSlim writer) : IAsyncDisposable
{
    public SqliteConnection Connection { get; } = connection;

    public SqliteCommand CreateCommand(string sql)
    {
        var command = Connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    public Task CommitAsync(CancellationToken cancellationToken) => transaction.CommitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await transaction.DisposeAsync();
            await Connection.DisposeAsync();
        }
        finally
        {
            writer.Release();
        }
    }
}

internal static class SqliteParameters
{
    public static SqliteParameter Add(this SqliteCommand command, string name, object? value) =>
        command.Parameters.AddWithValue(name, value ?? DBNull.Value);

    public static string? NullableString(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    public static DateTimeOffset Timestamp(this SqliteDataReader reader, int ordinal) =>
        StoreArguments.FromUnixMs(reader.GetInt64(ordinal));

    public static DateTimeOffset? NullableTimestamp(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : StoreArguments.FromUnixMs(reader.GetInt64(ordinal));
}
