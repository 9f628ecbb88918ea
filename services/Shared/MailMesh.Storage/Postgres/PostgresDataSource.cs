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

        settings.ApplicationName ??= "mailmesh";
        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        return builder.Build();
    }
}
