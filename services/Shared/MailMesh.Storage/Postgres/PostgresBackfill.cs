using Microsoft.Extensions.Logging;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// Fills recipients.received_at for recipients that were final before migration 0020 (which filled only pending ones),
/// after migration 0022 recorded the range of ids to visit in spool.backfills. Each batch of <see cref="BatchIds"/> ids
/// is its own transaction: it locks the bookkeeping row (so migrators in several processes take turns), copies the
/// messages' received time onto that id range's recipients that have none, and moves the range on, or deletes the row
/// when done. No lock is held between batches; only final rows are updated, which the delivery path never writes
/// again, so claims and results never wait for it (a completed-message purge may wait for one batch). An interrupted
/// back-fill resumes where it stopped at the next start.
/// </summary>
internal static partial class PostgresBackfill
{
    /// <summary>The bookkeeping row's name in spool.backfills.</summary>
    public const string RecipientsReceivedAt = "recipients.received_at";

    /// <summary>
    /// Ids per transaction: up to 10,000 rows changed, 0.6-1.5 s each on the 2-core development machine at load 6 (every
    /// row gets a new version and an entry in each index: recipient updates are not HOT); 1.3 M rows in about two minutes.
    /// </summary>
    internal const int BatchIds = 10_000;

    public static async Task RunAsync(NpgsqlDataSource dataSource, ILogger logger, CancellationToken cancellationToken)
    {
        var started = false;
        long filled = 0;
        while (true)
        {
            try
            {
                var (done, changed, next, last) = await BatchAsync(dataSource, cancellationToken);
                if (!started && !done)
                {
                    LogStarted(logger, next, last);
                    started = true;
                }

                filled += changed;
                if (done)
                {
                    if (started)
                    {
                        LogFinished(logger, filled);
                    }

                    return;
                }
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
            {
                // A purge deleting the same messages' recipients in another order: this batch was rolled back; do it again.
            }
        }
    }

    /// <summary>One batch; done when no bookkeeping row is left.</summary>
    private static async Task<(bool Done, int Changed, long Next, long Last)> BatchAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        long next, last;
        await using (var row = new NpgsqlCommand("SELECT next_id, last_id FROM spool.backfills WHERE name = @name FOR UPDATE", connection, transaction))
        {
            row.Parameters.Add(new NpgsqlParameter<string>("name", RecipientsReceivedAt));
            await using var reader = await row.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return (true, 0, 0, 0);
            }

            next = reader.GetInt64(0);
            last = reader.GetInt64(1);
        }

        var end = next + BatchIds;
        int changed;
        await using (var fill = new NpgsqlCommand(
            """
            UPDATE spool.recipients AS r SET received_at = m.received_at
            FROM spool.messages AS m
            WHERE r.id >= @from AND r.id < @to AND r.received_at IS NULL AND m.id = r.message_id
            """, connection, transaction))
        {
            fill.Parameters.Add(new NpgsqlParameter<long>("from", next));
            fill.Parameters.Add(new NpgsqlParameter<long>("to", end));
            changed = await fill.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var advance = new NpgsqlCommand(
            end > last
                ? "DELETE FROM spool.backfills WHERE name = @name"
                : "UPDATE spool.backfills SET next_id = @to WHERE name = @name", connection, transaction))
        {
            advance.Parameters.Add(new NpgsqlParameter<string>("name", RecipientsReceivedAt));
            advance.Parameters.Add(new NpgsqlParameter<long>("to", end));
            await advance.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return (false, changed, next, last);
    }

    /// <summary>True once nothing is left to back-fill (then the search may read recipients.received_at).</summary>
    public static async Task<bool> IsDoneAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT NOT EXISTS (SELECT 1 FROM spool.backfills WHERE name = @name)", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<string>("name", RecipientsReceivedAt));
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Back-filling the received time of recipients with ids {Next} to {Last} (migration 0022), in batches")]
    private static partial void LogStarted(ILogger logger, long next, long last);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Back-filled the received time of {Count} recipients (migration 0022)")]
    private static partial void LogFinished(ILogger logger, long count);
}
