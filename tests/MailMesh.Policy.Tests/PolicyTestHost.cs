using MailMesh.Contracts;
using MailMesh.Storage;
using MailMesh.Storage.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Policy.Tests;

/// <summary>
/// One process asking Policy's rules (an Ingress replica): <see cref="IPolicyChecks"/> over a SQLite policy store. Two
/// hosts on the same database file behave like two replicas sharing PostgreSQL.
/// </summary>
internal sealed class PolicyTestHost : IAsyncDisposable
{
    private readonly SqliteDatabase _database;

    private PolicyTestHost(SqliteDatabase database, ServiceProvider provider, FakeTimeProvider time)
    {
        _database = database;
        Provider = provider;
        Time = time;
    }

    public ServiceProvider Provider { get; }
    public FakeTimeProvider Time { get; }
    public IPolicyStore Store => Provider.GetRequiredService<IPolicyStore>();
    public IMailStore MailStore => Provider.GetRequiredService<IMailStore>();

    public static string NewDatabasePath() =>
        Path.Combine(Path.GetTempPath(), "mailmesh-policy-tests", Guid.NewGuid().ToString("N"), "policy.db");

    public static async Task<PolicyTestHost> StartAsync(
        Dictionary<string, string?>? settings = null, string? databasePath = null, FakeTimeProvider? time = null)
    {
        var database = new SqliteDatabase(databasePath ?? NewDatabasePath());
        await new SqliteSchemaMigrator(database, NullLogger<SqliteSchemaMigrator>.Instance).MigrateAsync(CancellationToken.None);

        time ??= new FakeTimeProvider(new DateTimeOffset(2025, 3, 1, 12, 0, 10, TimeSpan.Zero));
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings ?? []).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging();
        services.AddSingleton<TimeProvider>(time);
        services.AddSingleton<IPolicyStore>(new SqlitePolicyStore(database));
        services.AddSingleton<IMailStore>(new SqliteMailStore(database));
        services.AddPolicyServices();

        var provider = services.BuildServiceProvider(validateScopes: true);
        return new PolicyTestHost(database, provider, time);
    }

    public IPolicyChecks Checks => Provider.GetRequiredService<IPolicyChecks>();

    public Task<PolicyDecision> AskAsync(CheckConnection request) => Checks.CheckConnectionAsync(request, CancellationToken.None);

    public Task<PolicyDecision> AskAsync(CheckRecipient request) => Checks.CheckRecipientAsync(request, CancellationToken.None);

    public Task<PolicyDecision> AskAsync(CheckMessage request) => Checks.CheckMessageAsync(request, CancellationToken.None);

    public Task<PolicyDecision> RecipientAsync(string client, string recipient, string? user = null, int accepted = 0) =>
        AskAsync(new CheckRecipient
        {
            ClientAddress = client,
            Sender = "sender@origin.example",
            Recipient = recipient,
            AuthenticatedUser = user,
            AcceptedRecipients = accepted,
        });

    public async ValueTask DisposeAsync()
    {
        await Provider.DisposeAsync();
        _database.Dispose();
    }
}
