using Microsoft.Extensions.Logging;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>Builds the one <see cref="NpgsqlDataSource"/> that the spool, the policy store and the migrator share.</summary>
public static class PostgresDataSource
{
    /// <summary>The startup option that makes every commit on the connection durable before it returns.</summary>
    internal const string SynchronousCommit = "-c synchronous_commit=on";

    /// <summary>
    /// A data source for <paramref name="connectionString"/>. Unless the connection string says otherwise, every
    /// statement used twice is prepared automatically (the stores' SQL texts are constant), and the application
    /// name identifies MailMesh in pg_stat_activity, and a connection is not reset when it goes back to the pool.
    /// </summary>
    /// <param name="connectionString">The Npgsql connection string.</param>
    /// <param name="loggerFactory">Npgsql's logging, if any.</param>
    /// <param name="maxPoolSize">Storage:MaxPoolSize: overrides the connection string's Maximum Pool Size.</param>
    public static NpgsqlDataSource Create(string connectionString, ILoggerFactory? loggerFactory = null, int? maxPoolSize = null)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        if (maxPoolSize is { } max)
        {
            settings.MaxPoolSize = max;
            settings.MinPoolSize = Math.Min(settings.MinPoolSize, max);
        }
        if (settings.MaxAutoPrepare == 0)
        {
            settings.MaxAutoPrepare = 32;
            settings.AutoPrepareMinUsages = 2;
        }

        // Npgsql resets a pooled connection's session state (RESET ALL, CLOSE ALL, UNLISTEN, advisory unlocks, DISCARD
        // SEQUENCES and TEMP: six statements) each time it is handed out again, i.e. several times per mail. The stores
        // keep no session state of their own (synchronous_commit is a startup option, advisory locks are transaction-scoped), so
        // unless the connection string asks for the reset, it is skipped: issue 8 measured 1,873 such resets for about
        // 300 mails, PostgreSQL's largest share of statements.
        if (!new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.ContainsKey("No Reset On Close"))
        {
            settings.NoResetOnClose = true;
        }

        // 250 means safe: every commit the stores make is synchronous, whatever the server's, the database's or the
        // role's default. A startup option sets it for the connection's whole life at no cost (no statement, no round
        // trip), and it outranks those defaults; the stores never SET it. Before, each transaction began with a
        // set_config statement: three extra statements per mail in the distributed mode (issue 8).
        if (settings.Options?.Contains("synchronous_commit", StringComparison.Ordinal) != true)
        {
            settings.Options = string.IsNullOrWhiteSpace(settings.Options) ? SynchronousCommit : settings.Options + " " + SynchronousCommit;
        }

        settings.ApplicationName ??= "mailmesh";
        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        return builder.Build();
    }
}
