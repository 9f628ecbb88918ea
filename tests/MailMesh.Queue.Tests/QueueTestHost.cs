using System.Text;
using MailMesh.Storage;
using MailMesh.Storage.Sqlite;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Queue.Tests;

/// <summary>
/// The Queue's services on MassTransit's in-memory test harness, over a real SQLite spool in a temporary file and a
/// fake clock that only moves when a test advances it.
/// </summary>
internal sealed class QueueTestHost : IAsyncDisposable
{
    public const string Hostname = "mx.mailmesh.test";
    public const string Sender = "sender@origin.example";

    private readonly string _directory;
    private readonly SqliteDatabase _database;

    private QueueTestHost(string directory, SqliteDatabase database, ServiceProvider provider, FakeTimeProvider time)
    {
        _directory = directory;
        _database = database;
        Provider = provider;
        Time = time;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, TaskCompletionSource> _applied = new();

    public ServiceProvider Provider { get; }

    /// <summary>Completes once the result recorded under <paramref name="leaseId"/> was applied and deleted.</summary>
    public Task WaitAppliedAsync(Guid leaseId) => AppliedWaiter(leaseId).Task.WaitAsync(TimeSpan.FromSeconds(30));

    private TaskCompletionSource AppliedWaiter(Guid leaseId) =>
        _applied.GetOrAdd(leaseId, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
    public BusProbe Probe { get; } = new();
    public FakeTimeProvider Time { get; }
    public ISpool Spool => Provider.GetRequiredService<ISpool>();

    public IPolicyStore PolicyStore => Provider.GetRequiredService<IPolicyStore>();
    public ITestHarness Harness => Provider.GetRequiredService<ITestHarness>();
    public QueueOptions Options => Provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<QueueOptions>>().Value;

    public static async Task<QueueTestHost> StartAsync(Action<QueueOptions>? configure = null, Func<ISpool, ISpool>? wrapSpool = null)
    {
        DeliveryAttemptedConsumerDefinition.RetryIntervals = [TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20)];
        var directory = Path.Combine(Path.GetTempPath(), "mailmesh-queue-tests", Guid.NewGuid().ToString("N"));
        var database = new SqliteDatabase(Path.Combine(directory, "spool.db"));
        await new SqliteSchemaMigrator(database, NullLogger<SqliteSchemaMigrator>.Instance).MigrateAsync(CancellationToken.None);

        var time = new FakeTimeProvider(new DateTimeOffset(2025, 3, 1, 12, 0, 0, TimeSpan.Zero));
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().Build());
        services.AddLogging();
        services.AddSingleton<TimeProvider>(time);
        ISpool spool = new SqliteSpool(database);
        services.AddSingleton(wrapSpool is null ? spool : wrapSpool(spool));
        services.AddSingleton<IPolicyStore>(new SqlitePolicyStore(database));
        services.AddQueueServices();
        services.Configure<QueueOptions>(options =>
        {
            options.Hostname = Hostname;
            options.Jitter = 0;
            configure?.Invoke(options);
        });
        services.AddMassTransitTestHarness(bus =>
        {
            QueueExtensions.AddQueueConsumers(bus);
            bus.SetTestTimeouts(testInactivityTimeout: TimeSpan.FromSeconds(10));
        });

        var provider = services.BuildServiceProvider(validateScopes: true);
        var host = new QueueTestHost(directory, database, provider, time);
        await host.Harness.Start();
        host.Harness.Bus.ConnectPublishObserver(host.Probe);
        host.Harness.Bus.ConnectConsumeObserver(host.Probe);

        // Results go through the spool's outbox: the consumer records them and pokes the applier, which applies them.
        var applier = provider.GetRequiredService<ResultApplier>();
        applier.Applied = leaseId => host.AppliedWaiter(leaseId).TrySetResult();
        await applier.StartAsync(CancellationToken.None);
        return host;
    }

    /// <summary>Stores a message from <paramref name="sender"/> to <paramref name="recipients"/>, received now.</summary>
    public async Task<Guid> StoreAsync(string sender = Sender, string? ret = null, string? envelopeId = null, params NewRecipient[] recipients)
    {
        var id = Guid.NewGuid();
        await Spool.StoreAsync(
            new NewMessage
            {
                Id = id,
                Sender = sender,
                Recipients = recipients.Length > 0 ? recipients : [new NewRecipient { Address = "rcpt@dest.example" }],
                Content = Encoding.ASCII.GetBytes(SampleMessage(sender)),
                ReceivedAt = Time.GetUtcNow(),
                Ret = ret,
                EnvelopeId = envelopeId,
            },
            CancellationToken.None);
        return id;
    }

    public static string SampleMessage(string sender) =>
        $"From: <{(sender.Length == 0 ? "mailer-daemon@origin.example" : sender)}>\r\nTo: <rcpt@dest.example>\r\nSubject: Quarterly report\r\n" +
        "Message-ID: <original-1@origin.example>\r\nDate: Sat, 01 Mar 2025 12:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=us-ascii\r\n\r\nThe numbers are in.\r\n";

    /// <summary>Claims everything due now and returns the single job for <paramref name="messageId"/>.</summary>
    public async Task<DeliveryJob> ClaimAsync(Guid messageId)
    {
        var jobs = await Spool.ClaimDueAsync(Time.GetUtcNow(), 1000, Options.LeaseDuration, CancellationToken.None);
        return Assert.Single(jobs, j => j.MessageId == messageId);
    }

    public async ValueTask DisposeAsync()
    {
        await Provider.GetRequiredService<ResultApplier>().StopAsync(CancellationToken.None);
        await Harness.Stop();
        await Provider.DisposeAsync();
        _database.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A pooled connection may still hold the file on some platforms; the temp directory is cleaned later.
        }
    }
}
