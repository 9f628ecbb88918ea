using Microsoft.Data.Sqlite;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// The group-commit writer's prepared statements, kept from one operation and one batch to the next. Microsoft.Data.Sqlite
/// compiles a command's SQL when it first runs and keeps the compiled statement for as long as the command lives, but
/// the stores create a command per statement per operation, so every write compiled its SQL again: the parser and
/// planner were about a fifth of the writer thread's time, and the writer is the one thread every commit waits for
/// (issue 8: a write waited p99 12 ms for the batch ahead of it at 80 % of peak). Here a command handed out by
/// <see cref="SqliteWrite.CreateCommand"/> comes back when it is disposed, with its compiled statement and without
/// its parameters, and the next command for the same SQL is that one.
/// </summary>
/// <remarks>
/// Only the writer thread uses it (one connection, one thread), so it takes no lock. It holds at most
/// <see cref="MaxIdle"/> commands; one more is disposed as before. Disposing the cache (the writer connection is closed
/// or discarded after a failure) disposes them all.
/// </remarks>
internal sealed class SqliteStatementCache(SqliteConnection connection) : IDisposable
{
    /// <summary>More than the stores have distinct write statements, so in steady state nothing is compiled twice.</summary>
    internal const int MaxIdle = 256;

    private readonly Dictionary<string, Stack<CachedSqliteCommand>> _idle = new(StringComparer.Ordinal);
    private int _count;
    private bool _disposed;

    /// <summary>Commands compiled so far (tests watch it).</summary>
    internal long Created { get; private set; }

    /// <summary>Commands waiting in the cache (tests watch it).</summary>
    internal int IdleCount => _count;

    public SqliteCommand Rent(string sql, SqliteTransaction transaction)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_idle.TryGetValue(sql, out var idle) && idle.TryPop(out var command))
        {
            _count--;
            command.Idle = false;
        }
        else
        {
            command = new CachedSqliteCommand(this, sql) { Connection = connection, CommandText = sql };
            Created++;
        }

        command.Transaction = transaction;
        return command;
    }

    /// <summary>Keeps <paramref name="command"/> for its SQL; false if it should be disposed instead.</summary>
    internal bool Return(CachedSqliteCommand command)
    {
        if (command.Idle)
        {
            return true; // disposed twice: it is already back
        }

        // A command given other SQL after it was handed out (SQL built per call: the admin's IN lists) would never be
        // asked for again under that SQL: it is disposed, as before the cache.
        if (_disposed || _count >= MaxIdle || command.Connection != connection || command.CommandText != command.Sql)
        {
            return false;
        }

        command.Parameters.Clear();
        command.Transaction = null;
        var sql = command.Sql;
        if (!_idle.TryGetValue(sql, out var idle))
        {
            _idle[sql] = idle = new Stack<CachedSqliteCommand>();
        }

        command.Idle = true;
        idle.Push(command);
        _count++;
        return true;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var idle in _idle.Values)
        {
            foreach (var command in idle)
            {
                command.Idle = false;
                command.Dispose();
            }
        }

        _idle.Clear();
        _count = 0;
    }
}

/// <summary>A command that goes back to its <see cref="SqliteStatementCache"/> when disposed, compiled statement and all.</summary>
/// <remarks>
/// A command whose reader is still open is disposed for real (which closes the reader): kept, its statement would stay
/// in progress, and the batch's RELEASE and COMMIT would fail. A holder must not dispose a command again after it went
/// back (another operation may have it by then); the stores' <c>using</c> declarations dispose once.
/// </remarks>
internal sealed class CachedSqliteCommand(SqliteStatementCache cache, string sql) : SqliteCommand
{
    /// <summary>The SQL it was compiled for and is cached under.</summary>
    internal string Sql { get; } = sql;

    /// <summary>In the cache, waiting for its next use.</summary>
    internal bool Idle { get; set; }

    protected override void Dispose(bool disposing)
    {
        if (disposing && DataReader is null && cache.Return(this))
        {
            return;
        }

        base.Dispose(disposing);
    }
}
