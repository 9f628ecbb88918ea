using BenchmarkDotNet.Attributes;
using MailMesh.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace MailMesh.Benchmarks.Mailbox;

/// <summary>
/// Messages stored per second by local delivery (issue 9): <see cref="Messages"/> deliveries of a 10 KB message, each
/// one <see cref="IMailStore.DeliverAsync"/> call (one transaction: exactly-once key, account lock and quota, body, UID,
/// message, usage, change signal) for one recipient, <see cref="Concurrency"/> at a time into <see cref="Accounts"/>
/// accounts, as the Mailbox consumer stores them. One operation is one message, so messages per second = 1 s / Mean.
/// SQLite (standalone: group commit) always; PostgreSQL (synchronous commit, a fresh database) when
/// MAILMESH_TEST_POSTGRES names a server. Run:
///   MAILMESH_TEST_POSTGRES="Host=127.0.0.1;Username=mailmesh;Password=mailmesh;Database=mailmesh" \
///   dotnet run -c Release --project tools/MailMesh.Benchmarks -- --filter '*MailStoreDelivery*' --job short
/// </summary>
[MemoryDiagnoser]
public class MailStoreDeliveryBenchmarks
{
    public const int Messages = 256;
    public const int Concurrency = 16;
    public const int Accounts = 10;

    private static readonly byte[] Body = MessageOf(10_000);
    private IHost? _host;
    private IMailStore? _store;
    private string? _directory;
    private string? _database;
    private long _recipient;

    public static IEnumerable<string> Stores() =>
        string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MAILMESH_TEST_POSTGRES")) ? ["sqlite"] : ["sqlite", "postgres"];

    [ParamsSource(nameof(Stores))]
    public string Store { get; set; } = "sqlite";

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    private async Task SetupAsync()
    {
        _directory = Directory.CreateTempSubdirectory("mailmesh-bench-store-").FullName;
        var settings = new Dictionary<string, string?>
        {
            ["Storage:Provider"] = Store,
            ["Storage:SqlitePath"] = Path.Combine(_directory, "mail.db"),
            ["Storage:MigrateOnStart"] = "true",
        };
        if (Store == "postgres")
        {
            var server = new NpgsqlConnectionStringBuilder(Environment.GetEnvironmentVariable("MAILMESH_TEST_POSTGRES"));
            _database = "mailmesh_bench_" + Guid.NewGuid().ToString("N")[..12];
            await AdminAsync(server, $"CREATE DATABASE {_database}");
            settings["ConnectionStrings:Spool"] = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = _database }.ConnectionString;
        }

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddLogging();
        builder.AddMailMeshStorage();
        _host = builder.Build();
        await _host.StartAsync();
        _store = _host.Services.GetRequiredService<IMailStore>();
        for (var i = 0; i < Accounts; i++)
        {
            await _store.CreateAccountAsync(new NewMailAccount { Address = Address(i), CreatedAt = DateTimeOffset.UtcNow }, CancellationToken.None);
        }
    }

    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task StoreMessages()
    {
        var next = -1;
        var workers = Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) is var i && i < Messages)
            {
                var recipient = Interlocked.Increment(ref _recipient);
                var address = Address((int)(recipient % Accounts));
                var outcome = await _store!.DeliverAsync(new LocalDelivery
                {
                    SpoolMessageId = Guid.NewGuid(),
                    Body = Body,
                    DeliveredAt = DateTimeOffset.UtcNow,
                    Recipients =
                    [
                        new LocalDeliveryRecipient
                        {
                            RecipientId = recipient,
                            Address = address,
                            HeaderPrefix = System.Text.Encoding.ASCII.GetBytes($"Return-Path: <app@origin.test>\r\nDelivered-To: {address}\r\n"),
                        },
                    ],
                }, CancellationToken.None);
                if (outcome[0].Status != LocalDeliveryStatus.Stored)
                {
                    throw new InvalidOperationException($"delivery {recipient} was not stored: {outcome[0].Status}");
                }
            }
        });
        await Task.WhenAll(workers);
    }

    [GlobalCleanup]
    public void Cleanup() => CleanupAsync().GetAwaiter().GetResult();

    private async Task CleanupAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
        }

        if (_database is not null)
        {
            NpgsqlConnection.ClearAllPools();
            await AdminAsync(new NpgsqlConnectionStringBuilder(Environment.GetEnvironmentVariable("MAILMESH_TEST_POSTGRES")), $"DROP DATABASE IF EXISTS {_database} WITH (FORCE)");
        }

        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static string Address(int account) => $"user{account}@bench.test";

    // The database name is generated above (letters, digits, underscore): CREATE/DROP DATABASE take no parameters.
    private static async Task AdminAsync(NpgsqlConnectionStringBuilder server, string sql)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static byte[] MessageOf(int size)
    {
        var header = "From: app@origin.test\r\nTo: user@bench.test\r\nSubject: stored per second\r\n\r\n"u8.ToArray();
        var message = new byte[size];
        header.CopyTo(message, 0);
        for (var i = header.Length; i < size; i++)
        {
            message[i] = (i % 78) switch { 76 => (byte)'\r', 77 => (byte)'\n', _ => (byte)('a' + (i % 26)) };
        }

        return message;
    }
}
