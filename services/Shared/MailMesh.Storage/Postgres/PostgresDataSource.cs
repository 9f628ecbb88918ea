using Microsoft.Extensions.Logging;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>Builds the one <see cref="NpgsqlDataSource"/> that the spool, the policy store and the migrator share.</summary>
public static class PostgresDataSource
{
    /// <summary>
    /// A data source for <paramref name="connectionString"/>. Unless the connection string says otherwise, every
    /// statement used twice is prepared automatically (the stores' SQL texts are constant), and the application
    /// name identifies MailMesh in pg_stat_activity.
    /// </summary>
    public static NpgsqlDataSource Create(string connectionString, ILoggerFactory? loggerFactory = null)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        if (settings.MaxAutoPrepare == 0)
        {
            settings.MaxAutoPrepare = 32;
            settings.AutoPrepareMinUsages = 2;
        }

        settings.ApplicationName ??= "mailmesh";
        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        return builder.Build();
    }
}
