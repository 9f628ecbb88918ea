using System.Globalization;
using Npgsql;

namespace MailMesh.LoadTool;

/// <summary>
/// The work PostgreSQL did for the distributed target, from the statistics views of the run's private database:
/// transactions (each a round trip that commits, at least), rows written and read, index and sequential scans.
/// PostgreSQL flushes a backend's counters when its transaction ends, at most once a second (PostgreSQL 15), so the
/// figures are read after the pipeline settled and a second more.
/// </summary>
internal static class PostgresCounters
{
    internal sealed record Totals(long Commits, long Rollbacks, long Inserted, long Updated, long Deleted, long Returned, long IndexScans, long SequentialScans)
    {
        public static Totals operator -(Totals after, Totals before) => new(
            after.Commits - before.Commits,
            after.Rollbacks - before.Rollbacks,
            after.Inserted - before.Inserted,
            after.Updated - before.Updated,
            after.Deleted - before.Deleted,
            after.Returned - before.Returned,
            after.IndexScans - before.IndexScans,
            after.SequentialScans - before.SequentialScans);

        /// <summary>One table cell: per accepted mail.</summary>
        public string PerMail(int accepted) => string.Create(CultureInfo.InvariantCulture,
            $"{(double)Commits / accepted:F1} commits ({Rollbacks} rollbacks in all), rows {(double)Inserted / accepted:F1} ins / {(double)Updated / accepted:F1} upd / {(double)Deleted / accepted:F1} del, {(double)IndexScans / accepted:F1} index + {(double)SequentialScans / accepted:F2} seq scans");
    }

    public static async Task<Totals?> ReadAsync(string? connectionString)
    {
        if (connectionString is null)
        {
            return null;
        }

        try
        {
            await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                """
                SELECT d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, d.tup_deleted, d.tup_returned,
                       coalesce((SELECT sum(idx_scan) FROM pg_stat_user_tables), 0)::bigint,
                       coalesce((SELECT sum(seq_scan) FROM pg_stat_user_tables), 0)::bigint
                FROM pg_stat_database d WHERE d.datname = current_database()
                """,
                connection);
            await using var reader = await command.ExecuteReaderAsync();
            if (!await reader.ReadAsync())
            {
                return null;
            }

            return new Totals(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6), reader.GetInt64(7));
        }
        catch (NpgsqlException)
        {
            return null;
        }
    }
}
