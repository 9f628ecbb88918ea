using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// One statement of the spool's work queues (the claim of due recipients, the claim of recorded results) run in a
/// transaction that lets the planner read tables only through plain index scans: no bitmap, no sequential scan.
/// </summary>
/// <remarks>
/// Those tables churn: every claimed or completed recipient, every applied result, leaves its old entry in the indexes
/// the claims read until vacuum. Only a plain index scan marks such an entry dead when it meets it, so that later scans
/// skip it without reading the row; a bitmap reads every dead entry's row, every time. And the planner, with statistics
/// from a quiet or young spool, thinks the work small and picks exactly that, or a sequential scan of the whole table:
/// in a paced distributed run the recipients' claim went from 226 to 1,389 buffers in 30 s with bitmaps, with bitmaps
/// off alone it locked its rows through a sequential scan of 9,000 recipients, and the results' claim read the whole
/// results table, dead rows included, for each of its updates (1,000-1,260 buffers for 50 rows; issue 8). SET LOCAL
/// holds for this transaction only; BEGIN goes out with the statement, so the cost is one round trip more, the commit.
/// </remarks>
internal sealed class IndexScansOnly : IAsyncDisposable
{
    internal static readonly string[] Settings = ["SET LOCAL enable_bitmapscan = off", "SET LOCAL enable_seqscan = off"];

    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;

    private IndexScansOnly(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql)
    {
        _connection = connection;
        _transaction = transaction;
        Batch = new NpgsqlBatch(connection, transaction);
        foreach (var setting in Settings)
        {
            Batch.BatchCommands.Add(new NpgsqlBatchCommand(setting));
        }

        Command = new NpgsqlBatchCommand(sql);
        Batch.BatchCommands.Add(Command);
    }

    /// <summary>The batch to execute: the settings, then <see cref="Command"/>, whose result is the batch's only one.</summary>
    public NpgsqlBatch Batch { get; }

    /// <summary>The statement; its parameters go here.</summary>
    public NpgsqlBatchCommand Command { get; }

    public static async Task<IndexScansOnly> BeginAsync(NpgsqlDataSource dataSource, string sql, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken);
            return new IndexScansOnly(connection, transaction, sql);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Commits durably, like the single statement it replaces; disposing without it rolls back.</summary>
    public Task CommitAsync(CancellationToken cancellationToken) => _transaction.CommitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Batch.DisposeAsync();
            await _transaction.DisposeAsync();
        }
        finally
        {
            // Back to the pool whatever the rollback did.
            await _connection.DisposeAsync();
        }
    }
}
