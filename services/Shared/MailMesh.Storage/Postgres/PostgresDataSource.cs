using Microsoft.Extensions.Logging;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>Builds the one <see cref="NpgsqlDataSource"/> that the spool, the policy store and the migrator share.</summary>
public static class PostgresDataSource
{
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
        // keep no session state (synchronous_commit is set per transaction, advisory locks are transaction-scoped), so
        // unless the connection string asks for the reset, it is skipped: issue 8 measured 1,873 such resets for about
        // 300 mails, PostgreSQL's largest share of statements.
        if (!new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.ContainsKey("No Reset On Close"))
        {
            settings.NoResetOnClose = true;
        }

        settings.ApplicationName ??= "mailmesh";
        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        return builder.Build();
    }
}
