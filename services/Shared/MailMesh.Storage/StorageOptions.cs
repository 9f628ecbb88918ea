using Microsoft.Extensions.Options;
using Npgsql;

namespace MailMesh.Storage;

/// <summary>Which store holds the spool and the policy tables.</summary>
public enum StorageProvider
{
    /// <summary>PostgreSQL through Npgsql: the distributed mode, any number of replicas.</summary>
    Postgres = 0,

    /// <summary>One SQLite file: Standalone, one process.</summary>
    Sqlite = 1,
}

/// <summary>
/// Storage settings: section <c>Storage</c>, plus the PostgreSQL connection string under
/// <c>ConnectionStrings:Spool</c> (environment <c>ConnectionStrings__Spool</c>).
/// </summary>
public sealed class StorageOptions
{
    public const string SectionName = "Storage";

    /// <summary>The configuration key of the PostgreSQL connection string.</summary>
    public const string ConnectionStringKey = "ConnectionStrings:Spool";

    /// <summary><c>postgres</c> (default) or <c>sqlite</c>.</summary>
    public StorageProvider Provider { get; set; } = StorageProvider.Postgres;

    /// <summary>The SQLite database file (provider sqlite); relative paths are relative to the working directory.</summary>
    public string SqlitePath { get; set; } = "data/mailmesh.db";

    /// <summary>
    /// Group commit for SQLite (default true): writes queued while one transaction commits share the next
    /// transaction and its one fsync, each acknowledged only after that commit. False: one fsync per write.
    /// </summary>
    public bool SqliteGroupCommit { get; set; } = true;

    /// <summary>Apply schema migrations when the host starts, before any other hosted service (Standalone sets true).</summary>
    public bool MigrateOnStart { get; set; }

    /// <summary>
    /// Most PostgreSQL connections this process opens (Npgsql <c>Maximum Pool Size</c>; overrides the connection
    /// string's). Set per service so that the sum over every replica stays below the server's <c>max_connections</c>
    /// (docs/operations.md, "Connection budget"); null keeps the connection string's value (Npgsql default 100).
    /// </summary>
    public int? MaxPoolSize { get; set; }

    /// <summary>Bound from <c>ConnectionStrings:Spool</c>, not from the Storage section.</summary>
    public string? ConnectionString { get; set; }
}

/// <summary>Every failure message starts with the full configuration key, as in the rest of MailMesh.</summary>
internal sealed class StorageOptionsValidation : IValidateOptions<StorageOptions>
{
    public ValidateOptionsResult Validate(string? name, StorageOptions options)
    {
        var failures = new List<string>();
        switch (options.Provider)
        {
            case StorageProvider.Postgres when string.IsNullOrWhiteSpace(options.ConnectionString):
                failures.Add($"{StorageOptions.ConnectionStringKey}: is required when {StorageOptions.SectionName}:Provider is postgres");
                break;
            case StorageProvider.Postgres:
                try
                {
                    _ = new NpgsqlConnectionStringBuilder(options.ConnectionString);
                }
                catch (ArgumentException ex)
                {
                    failures.Add($"{StorageOptions.ConnectionStringKey}: is not a valid PostgreSQL connection string ({ex.Message})");
                }

                break;
            case StorageProvider.Sqlite when string.IsNullOrWhiteSpace(options.SqlitePath):
                failures.Add($"{StorageOptions.SectionName}:SqlitePath: is required when {StorageOptions.SectionName}:Provider is sqlite");
                break;
            case StorageProvider.Sqlite:
                break;
            default:
                failures.Add($"{StorageOptions.SectionName}:Provider: must be postgres or sqlite");
                break;
        }

        if (options.MaxPoolSize is < 1 or > 10_000)
        {
            failures.Add($"{StorageOptions.SectionName}:MaxPoolSize: must be between 1 and 10000 (was {options.MaxPoolSize})");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
