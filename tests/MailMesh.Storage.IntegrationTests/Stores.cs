using MailMesh.Storage.Postgres;
using MailMesh.Storage.Sqlite;
using MailMesh.Testing.Postgres;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>A migrated, empty store for one test, and a way to open more independent instances of it.</summary>
public abstract class Stores : IAsyncDisposable
{
    public ISpool Spool { get; protected set; } = null!;
    public IPolicyStore Policy { get; protected set; } = null!;
    public ISchemaMigrator Migrator { get; protected set; } = null!;
    public IMailStore Mail { get; protected set; } = null!;
    public ISpoolAdmin SpoolAdmin { get; protected set; } = null!;

    public ISpoolRates Rates { get; protected set; } = null!;
    public ISuppressionAdmin SuppressionAdmin { get; protected set; } = null!;
    public ICredentialStore Credentials { get; protected set; } = null!;
    public IPoolCounters PoolCounters { get; protected set; } = null!;
    public ISiteActionStore SiteActions { get; protected set; } = null!;
    public ISmtpUserStore SmtpUsers { get; protected set; } = null!;
    public IWebhookStore Webhooks { get; protected set; } = null!;

    /// <summary>Another mail store over the same database (another replica, with its own change listener in PostgreSQL).</summary>
    public abstract IMailStore OpenMailStore();

    /// <summary>
    /// Another spool over the same database but its own connections (for SQLite its own <see cref="SqliteDatabase"/>,
    /// so writers meet at the file lock as separate processes would).
    /// </summary>
    public abstract ISpool OpenSpool();

    /// <summary>Another migrator with its own connections.</summary>
    public abstract ISchemaMigrator OpenMigrator();

    /// <summary>A TLS report store over the same database, with its own connections (another replica).</summary>
    public abstract ITlsReportStore OpenTlsReports();

    public abstract ValueTask DisposeAsync();
}

public sealed class PostgresStores : Stores
{
    private readonly TestDatabase _database;
    private readonly List<NpgsqlDataSource> _dataSources = [];
    private readonly List<PostgresMailStore> _mailStores = [];
    private readonly List<PostgresPolicyStore> _policyStores = [];

    private PostgresStores(TestDatabase database)
    {
        _database = database;
        var dataSource = NewDataSource();
        Spool = new PostgresSpool(dataSource);
        Policy = NewPolicyStore(dataSource);
        Migrator = new PostgresSchemaMigrator(dataSource, NullLogger<PostgresSchemaMigrator>.Instance);
        Mail = NewMailStore(dataSource);
        SpoolAdmin = new PostgresSpoolAdmin(dataSource);
        SuppressionAdmin = new PostgresSuppressionAdmin(dataSource);
        Credentials = new PostgresCredentialStore(dataSource);
        PoolCounters = new PostgresPoolCounters(dataSource);
        SiteActions = new PostgresShapingStore(dataSource);
        SmtpUsers = new PostgresSmtpUserStore(dataSource);
        Webhooks = new PostgresWebhookStore(dataSource);
        Rates = new PostgresSpoolRates(dataSource);
    }

    public string ConnectionString => _database.ConnectionString;

    public static async Task<PostgresStores> CreateAsync(bool migrate = true)
    {
        var stores = new PostgresStores(await TestDatabase.CreateAsync("mailmesh_storage"));
        try
        {
            if (migrate)
            {
                await stores.Migrator.MigrateAsync(CancellationToken.None);
            }

            return stores;
        }
        catch
        {
            await stores.DisposeAsync();
            throw;
        }
    }

    public override ISpool OpenSpool() => new PostgresSpool(NewDataSource());

    public override ITlsReportStore OpenTlsReports() => new PostgresTlsReportStore(NewDataSource());

    public override IMailStore OpenMailStore() => NewMailStore(NewDataSource());

    private PostgresMailStore NewMailStore(NpgsqlDataSource dataSource)
    {
        var store = new PostgresMailStore(dataSource, NullLogger<PostgresMailStore>.Instance, TimeProvider.System);
        lock (_mailStores)
        {
            _mailStores.Add(store);
        }

        return store;
    }

    /// <summary>The policy store of another process: its own data source, its own suppression filter.</summary>
    public PostgresPolicyStore OpenPolicyStore() => NewPolicyStore(NewDataSource());

    private PostgresPolicyStore NewPolicyStore(NpgsqlDataSource dataSource)
    {
        var store = new PostgresPolicyStore(dataSource);
        lock (_policyStores)
        {
            _policyStores.Add(store);
        }

        return store;
    }

    public override ISchemaMigrator OpenMigrator() =>
        new PostgresSchemaMigrator(NewDataSource(), NullLogger<PostgresSchemaMigrator>.Instance);

    private NpgsqlDataSource NewDataSource()
    {
        var dataSource = PostgresDataSource.Create(_database.ConnectionString);
        lock (_dataSources)
        {
            _dataSources.Add(dataSource);
        }

        return dataSource;
    }

    public override async ValueTask DisposeAsync()
    {
        foreach (var store in _mailStores)
        {
            await store.DisposeAsync();
        }

        foreach (var store in _policyStores)
        {
            await store.DisposeAsync();
        }

        foreach (var dataSource in _dataSources)
        {
            await dataSource.DisposeAsync();
        }

        await _database.DisposeAsync();
    }
}

public sealed class SqliteStores : Stores
{
    private readonly string _directory;
    private readonly SqliteCommitMode _commitMode;
    private readonly List<SqliteDatabase> _databases = [];

    private SqliteStores(SqliteCommitMode commitMode)
    {
        _commitMode = commitMode;
        _directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mailmesh-tests", Guid.NewGuid().ToString("N"));
        Path = System.IO.Path.Combine(_directory, "nested", "mailmesh.db");
        var database = NewDatabase();
        Spool = new SqliteSpool(database);
        Policy = new SqlitePolicyStore(database);
        Migrator = new SqliteSchemaMigrator(database, NullLogger<SqliteSchemaMigrator>.Instance);
        Mail = new SqliteMailStore(database);
        SpoolAdmin = new SqliteSpoolAdmin(database);
        SuppressionAdmin = new SqliteSuppressionAdmin(database);
        Credentials = new SqliteCredentialStore(database);
        PoolCounters = new SqlitePoolCounters(database);
        SiteActions = new SqliteShapingStore(database);
        SmtpUsers = new SqliteSmtpUserStore(database);
        Webhooks = new SqliteWebhookStore(database);
        Rates = new SqliteSpoolRates(database);
    }

    public string Path { get; }

    public static async Task<SqliteStores> CreateAsync(bool migrate = true, SqliteCommitMode commitMode = SqliteCommitMode.Group)
    {
        var stores = new SqliteStores(commitMode);
        try
        {
            if (migrate)
            {
                await stores.Migrator.MigrateAsync(CancellationToken.None);
            }

            return stores;
        }
        catch
        {
            await stores.DisposeAsync();
            throw;
        }
    }

    public override ISpool OpenSpool() => new SqliteSpool(NewDatabase());

    public override ITlsReportStore OpenTlsReports() => new SqliteTlsReportStore(NewDatabase());

    public override IMailStore OpenMailStore() => new SqliteMailStore(NewDatabase());

    public override ISchemaMigrator OpenMigrator() =>
        new SqliteSchemaMigrator(NewDatabase(), NullLogger<SqliteSchemaMigrator>.Instance);

    /// <summary>Another <see cref="SqliteDatabase"/> on the file (in this store's commit mode unless told otherwise).</summary>
    public SqliteDatabase NewDatabase(SqliteCommitMode? commitMode = null)
    {
        var database = new SqliteDatabase(Path, commitMode ?? _commitMode);
        lock (_databases)
        {
            _databases.Add(database);
        }

        return database;
    }

    public override async ValueTask DisposeAsync()
    {
        foreach (var database in _databases)
        {
            await database.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
    }
}
