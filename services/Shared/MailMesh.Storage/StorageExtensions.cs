using MailMesh.Storage.Postgres;
using MailMesh.Storage.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace MailMesh.Storage;

public static class StorageExtensions
{
    /// <summary>
    /// Registers <see cref="ISpool"/>, <see cref="IPolicyStore"/>, <see cref="IMailStore"/>, <see cref="ISpoolAdmin"/>, <see cref="ISuppressionAdmin"/>, <see cref="ICredentialStore"/>, <see cref="ISmtpUserStore"/>, <see cref="IPoolCounters"/>, <see cref="ITlsReportStore"/>, <see cref="IWebhookStore"/>, <see cref="IAdminLoginStore"/>, <see cref="IAdminUiKeyStore"/> and <see cref="ISchemaMigrator"/> (singletons) over
    /// the store that <c>Storage:Provider</c> names: one <see cref="NpgsqlDataSource"/> for <c>ConnectionStrings:Spool</c>,
    /// or one SQLite file at <c>Storage:SqlitePath</c>. Options are validated when the host starts. With
    /// <c>Storage:MigrateOnStart</c> the schema is migrated before any other hosted service starts. Calling this
    /// more than once (every service of Standalone does) registers everything once.
    /// </summary>
    /// <param name="builder">The host.</param>
    /// <param name="defaultMaxPoolSize">
    /// The calling service's share of PostgreSQL's connections when neither <c>Storage:MaxPoolSize</c> nor the
    /// connection string's <c>Maximum Pool Size</c> says (docs/operations.md, "Connection budget"); several services in
    /// one process add their shares. 0: Npgsql's default (100), for tools and tests only.
    /// </param>
    public static IHostApplicationBuilder AddMailMeshStorage(this IHostApplicationBuilder builder, int defaultMaxPoolSize = 0)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentOutOfRangeException.ThrowIfNegative(defaultMaxPoolSize);
        var services = builder.Services;
        var budget = services.Select(d => d.ImplementationInstance).OfType<StoragePoolBudget>().FirstOrDefault();
        if (budget is null)
        {
            budget = new StoragePoolBudget();
            services.AddSingleton(budget);
        }

        budget.Add(defaultMaxPoolSize);
        if (services.Any(d => d.ServiceType == typeof(StorageBackend)))
        {
            return builder;
        }

        services.AddOptions<StorageOptions>()
            .BindConfiguration(StorageOptions.SectionName)
            .Configure<IConfiguration>((options, configuration) =>
                options.ConnectionString = configuration[StorageOptions.ConnectionStringKey] ?? options.ConnectionString)
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StorageOptions>, StorageOptionsValidation>());

        services.AddSingleton<StorageBackend>();
        services.TryAddSingleton<ISpool>(sp => sp.GetRequiredService<StorageBackend>().CreateSpool());
        services.TryAddSingleton<IPolicyStore>(sp => sp.GetRequiredService<StorageBackend>().CreatePolicyStore());
        services.TryAddSingleton<IMailStore>(sp => sp.GetRequiredService<StorageBackend>().CreateMailStore(sp.GetService<TimeProvider>() ?? TimeProvider.System));
        services.TryAddSingleton<ISchemaMigrator>(sp => sp.GetRequiredService<StorageBackend>().CreateMigrator());
        services.TryAddSingleton<ISpoolAdmin>(sp => sp.GetRequiredService<StorageBackend>().CreateSpoolAdmin());
        services.TryAddSingleton<ISuppressionAdmin>(sp => sp.GetRequiredService<StorageBackend>().CreateSuppressionAdmin());
        services.TryAddSingleton<ICredentialStore>(sp => sp.GetRequiredService<StorageBackend>().CreateCredentialStore());
        services.TryAddSingleton<IPoolCounters>(sp => sp.GetRequiredService<StorageBackend>().CreatePoolCounters());
        services.TryAddSingleton<ITlsReportStore>(sp => sp.GetRequiredService<StorageBackend>().CreateTlsReportStore());
        services.TryAddSingleton<ISiteActionStore>(sp => sp.GetRequiredService<StorageBackend>().CreateSiteActionStore());
        services.TryAddSingleton<ISmtpUserStore>(sp => sp.GetRequiredService<StorageBackend>().CreateSmtpUserStore());
        services.TryAddSingleton<IWebhookStore>(sp => sp.GetRequiredService<StorageBackend>().CreateWebhookStore());
        services.TryAddSingleton<ISpoolRates>(sp => sp.GetRequiredService<StorageBackend>().CreateSpoolRates());
        services.TryAddSingleton<IAdminLoginStore>(sp => sp.GetRequiredService<StorageBackend>().CreateAdminLoginStore());
        services.TryAddSingleton<IAdminUiKeyStore>(sp => sp.GetRequiredService<StorageBackend>().CreateAdminUiKeyStore(sp.GetService<TimeProvider>() ?? TimeProvider.System));

        // First in the list, and in StartingAsync: the schema exists before any listener or consumer starts.
        services.Insert(0, ServiceDescriptor.Singleton<IHostedService, MigrateOnStartService>());
        return builder;
    }
}

/// <summary>The one connection source of the configured provider, created on first use and disposed with the host.</summary>
internal sealed class StorageBackend(IOptions<StorageOptions> options, StoragePoolBudget budget, ILoggerFactory loggerFactory) : IAsyncDisposable, IDisposable
{
    private readonly Lock _gate = new();
    private NpgsqlDataSource? _dataSource;
    private SqliteDatabase? _sqlite;

    public StorageProvider Provider => options.Value.Provider;

    public ISpool CreateSpool() => Provider == StorageProvider.Sqlite
        ? new SqliteSpool(Sqlite())
        : new PostgresSpool(DataSource());

    public IPolicyStore CreatePolicyStore() => Provider == StorageProvider.Sqlite
        ? new SqlitePolicyStore(Sqlite())
        : new PostgresPolicyStore(DataSource(), loggerFactory.CreateLogger<PostgresPolicyStore>());

    public IMailStore CreateMailStore(TimeProvider time) => Provider == StorageProvider.Sqlite
        ? new SqliteMailStore(Sqlite())
        : new PostgresMailStore(DataSource(), loggerFactory.CreateLogger<PostgresMailStore>(), time);

    public ISpoolAdmin CreateSpoolAdmin() => Provider == StorageProvider.Sqlite
        ? new SqliteSpoolAdmin(Sqlite())
        : new PostgresSpoolAdmin(DataSource());

    public ISuppressionAdmin CreateSuppressionAdmin() => Provider == StorageProvider.Sqlite
        ? new SqliteSuppressionAdmin(Sqlite())
        : new PostgresSuppressionAdmin(DataSource());

    public ICredentialStore CreateCredentialStore() => Provider == StorageProvider.Sqlite
        ? new SqliteCredentialStore(Sqlite())
        : new PostgresCredentialStore(DataSource());

    public ISmtpUserStore CreateSmtpUserStore() => Provider == StorageProvider.Sqlite
        ? new SqliteSmtpUserStore(Sqlite())
        : new PostgresSmtpUserStore(DataSource());
    public IPoolCounters CreatePoolCounters() => Provider == StorageProvider.Sqlite
        ? new SqlitePoolCounters(Sqlite())
        : new PostgresPoolCounters(DataSource());

    public ITlsReportStore CreateTlsReportStore() => Provider == StorageProvider.Sqlite
        ? new SqliteTlsReportStore(Sqlite())
        : new PostgresTlsReportStore(DataSource());

    public ISpoolRates CreateSpoolRates() => Provider == StorageProvider.Sqlite
        ? new SqliteSpoolRates(Sqlite())
        : new PostgresSpoolRates(DataSource());

    /// <summary>
    /// Traffic shaping's site actions; over PostgreSQL the same object is also the <see cref="IShapingBudgetStore"/> that
    /// Delivery's replicas share (SQLite's one process keeps its budgets in memory).
    /// </summary>
    public ISiteActionStore CreateSiteActionStore() => Provider == StorageProvider.Sqlite
        ? new SqliteShapingStore(Sqlite())
        : new PostgresShapingStore(DataSource());

    public IWebhookStore CreateWebhookStore() => Provider == StorageProvider.Sqlite
        ? new SqliteWebhookStore(Sqlite())
        : new PostgresWebhookStore(DataSource());

    public ISchemaMigrator CreateMigrator() => Provider == StorageProvider.Sqlite
        ? new SqliteSchemaMigrator(Sqlite(), loggerFactory.CreateLogger<SqliteSchemaMigrator>())
        : new PostgresSchemaMigrator(DataSource(), loggerFactory.CreateLogger<PostgresSchemaMigrator>());

    /// <summary>The admin UI's failed logins and lockouts, shared by its replicas (issue 12).</summary>
    public IAdminLoginStore CreateAdminLoginStore() => Provider == StorageProvider.Sqlite
        ? new SqliteAdminLoginStore(Sqlite())
        : new PostgresAdminLoginStore(DataSource());

    /// <summary>The admin UI's Data Protection key ring, shared by its replicas (issue 12).</summary>
    public IAdminUiKeyStore CreateAdminUiKeyStore(TimeProvider time) => Provider == StorageProvider.Sqlite
        ? new SqliteAdminUiKeyStore(Sqlite(), time)
        : new PostgresAdminUiKeyStore(DataSource());

    private NpgsqlDataSource DataSource()
    {
        lock (_gate)
        {
            return _dataSource ??= PostgresDataSource.Create(options.Value.ConnectionString!, loggerFactory, budget.MaxPoolSize(options.Value));
        }
    }

    private SqliteDatabase Sqlite()
    {
        lock (_gate)
        {
            return _sqlite ??= new SqliteDatabase(
                options.Value.SqlitePath,
                options.Value.SqliteGroupCommit ? SqliteCommitMode.Group : SqliteCommitMode.PerOperation);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
        }

        if (_sqlite is not null)
        {
            await _sqlite.DisposeAsync();
        }
    }

    public void Dispose()
    {
        _dataSource?.Dispose();
        _sqlite?.Dispose();
    }
}

/// <summary>Runs the migrator in <see cref="IHostedLifecycleService.StartingAsync"/> when Storage:MigrateOnStart is set.</summary>
internal sealed class MigrateOnStartService(IOptions<StorageOptions> options, IServiceProvider services) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) =>
        options.Value.MigrateOnStart
            ? services.GetRequiredService<ISchemaMigrator>().MigrateAsync(cancellationToken)
            : Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// The pool size of this process when nothing configures one: the sum of the shares of the services it hosts. Without
/// it, a pool may grow to Npgsql's default of 100 in every process, and after a restart of PostgreSQL one busy service
/// (Delivery reconnecting every lease renewal at once) could take every slot the server has, so that the others, and
/// an operator's psql, get "too many clients" until its idle connections age out.
/// </summary>
internal sealed class StoragePoolBudget
{
    private int _connections;

    public void Add(int connections) => Interlocked.Add(ref _connections, connections);

    /// <summary><c>Storage:MaxPoolSize</c>, else the connection string's own <c>Maximum Pool Size</c>, else the services' shares.</summary>
    public int? MaxPoolSize(StorageOptions options)
    {
        if (options.MaxPoolSize is { } configured)
        {
            return configured;
        }

        var connectionString = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = options.ConnectionString ?? "" };
        return connectionString.ContainsKey("Maximum Pool Size") || connectionString.ContainsKey("Max Pool Size") || connectionString.ContainsKey("MaxPoolSize") || _connections == 0
            ? null
            : _connections;
    }
}
