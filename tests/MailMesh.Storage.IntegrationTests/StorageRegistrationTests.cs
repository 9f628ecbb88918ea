using MailMesh.Migrator;
using MailMesh.Testing.Postgres;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace MailMesh.Storage.IntegrationTests;

public sealed class StorageRegistrationTests
{
    private static HostApplicationBuilder Builder(params string[] args)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { Args = args });
        builder.Configuration.AddCommandLine(args);
        return builder;
    }

    [Fact]
    public void A_pooled_PostgreSQL_connection_is_not_reset_unless_the_connection_string_asks_for_it()
    {
        // Issue 8: the reset (six statements) ran each time a connection left the pool, several times per mail.
        using var defaults = Postgres.PostgresDataSource.Create("Host=127.0.0.1;Username=u;Password=p;Database=d");
        using var asked = Postgres.PostgresDataSource.Create("Host=127.0.0.1;Username=u;Password=p;Database=d;No Reset On Close=false");

        Assert.True(new NpgsqlConnectionStringBuilder(defaults.ConnectionString).NoResetOnClose);
        Assert.False(new NpgsqlConnectionStringBuilder(asked.ConnectionString).NoResetOnClose);
        Assert.Equal("mailmesh", new NpgsqlConnectionStringBuilder(defaults.ConnectionString).ApplicationName);
    }

    [Theory]
    [InlineData(null, "", 30)]
    [InlineData(7, "", 7)]
    [InlineData(null, ";Maximum Pool Size=3", null)]
    [InlineData(null, ";Max Pool Size=3", null)]
    public void A_process_pool_defaults_to_the_sum_of_its_services_shares_not_Npgsqls_100(int? configured, string connectionStringTail, int? expected)
    {
        // The chaos run's PostgreSQL restart: Delivery alone reopened 48 connections at once, and with Npgsql's default
        // of 100 per process the services together could take every slot the server has.
        var builder = Builder();
        builder.AddMailMeshStorage(defaultMaxPoolSize: 10);
        builder.AddMailMeshStorage(defaultMaxPoolSize: 20);
        using var host = builder.Build();
        var budget = host.Services.GetRequiredService<StoragePoolBudget>();

        var options = new StorageOptions { MaxPoolSize = configured, ConnectionString = "Host=127.0.0.1;Username=u;Password=p;Database=d" + connectionStringTail };
        Assert.Equal(expected, budget.MaxPoolSize(options));
    }

    [Fact]
    public async Task Postgres_without_a_connection_string_fails_at_start_naming_the_key()
    {
        var builder = Builder();
        builder.AddMailMeshStorage();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Equal("ConnectionStrings:Spool: is required when Storage:Provider is postgres", Assert.Single(error.Failures));
    }

    [Fact]
    public async Task Sqlite_with_migrate_on_start_creates_the_schema_before_other_services_start()
    {
        var directory = Path.Combine(Path.GetTempPath(), "mailmesh-tests", Guid.NewGuid().ToString("N"));
        var builder = Builder("--Storage:Provider=sqlite", $"--Storage:SqlitePath={directory}/data/mm.db", "--Storage:MigrateOnStart=true");
        builder.Services.AddHostedService<StoresOnStart>();
        builder.AddMailMeshStorage();
        builder.AddMailMeshStorage();
        using var host = builder.Build();

        Assert.Single(host.Services.GetServices<IHostedService>(), s => s.GetType().Name == "MigrateOnStartService");
        await host.StartAsync();
        Assert.True(File.Exists(Path.Combine(directory, "data", "mm.db")));
        Assert.Same(host.Services.GetRequiredService<ISpool>(), host.Services.GetRequiredService<ISpool>());
        Assert.IsType<Sqlite.SqlitePolicyStore>(host.Services.GetRequiredService<IPolicyStore>());
        await host.StopAsync();
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task Postgres_provider_is_the_default()
    {
        await using var db = await TestDatabase.CreateAsync("mailmesh_di");
        var builder = Builder($"--ConnectionStrings:Spool={db.ConnectionString}", "--Storage:MigrateOnStart=true");
        builder.AddMailMeshStorage();
        using (var host = builder.Build())
        {
            await host.StartAsync();
            Assert.IsType<Postgres.PostgresSpool>(host.Services.GetRequiredService<ISpool>());
            Assert.IsType<Postgres.PostgresPolicyStore>(host.Services.GetRequiredService<IPolicyStore>());
            await host.StopAsync();
        }

        NpgsqlConnection.ClearAllPools();
    }

    [Fact]
    public async Task Migrator_applies_migrations_and_exits_0()
    {
        await using var db = await TestDatabase.CreateAsync("mailmesh_migrator");
        var error = new StringWriter();

        var code = await MigratorApp.RunAsync([$"--ConnectionStrings:Spool={db.ConnectionString}", "--Logging:LogLevel:Default=Warning"], TimeProvider.System, error, CancellationToken.None);

        Assert.Equal(0, code);
        Assert.Equal("", error.ToString());
        NpgsqlConnection.ClearAllPools();
    }

    [Fact]
    public async Task Migrator_without_a_connection_string_exits_2_with_one_line_naming_the_key()
    {
        var error = new StringWriter();
        var code = await MigratorApp.RunAsync([], TimeProvider.System, error, CancellationToken.None);

        Assert.Equal(2, code);
        Assert.Equal(
            "mailmesh-migrator: configuration error: ConnectionStrings:Spool: is required when Storage:Provider is postgres",
            error.ToString().TrimEnd());
    }

    [Fact]
    public async Task Migrator_gives_up_on_an_unreachable_database_after_its_retry_window()
    {
        var error = new StringWriter();
        var code = await MigratorApp.RunAsync(
            ["--ConnectionStrings:Spool=Host=127.0.0.1;Port=1;Username=x;Password=x;Timeout=1", "--Migrator:RetryFor=00:00:01", "--Logging:LogLevel:Default=None"],
            TimeProvider.System, error, CancellationToken.None);

        Assert.Equal(1, code);
        Assert.StartsWith("mailmesh-migrator: migration failed:", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>A hosted service that needs the schema when it starts, as Ingress and Queue do.</summary>
    private sealed class StoresOnStart(ISpool spool) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => spool.CountByStateAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
