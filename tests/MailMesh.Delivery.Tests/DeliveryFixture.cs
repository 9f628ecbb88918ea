using MailMesh.Testing.Infrastructure;
using System.Collections.Concurrent;
using MailMesh.Contracts;
using MailMesh.Dns;
using MailMesh.Storage;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Smtp;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// Delivery and Dns registered exactly as the services register themselves (AddDns, AddDelivery), on MassTransit's
/// in-memory test harness, with a real <see cref="TestDnsServer"/>, real <see cref="SmtpSink"/>s sharing one port on
/// 127.0.0.1, 127.0.0.2, ... and an in-memory spool.
/// </summary>
internal sealed class DeliveryFixture : IAsyncDisposable
{
    private readonly IHost _host;

    private DeliveryFixture(IHost host, TestDnsServer dns, IReadOnlyList<SmtpSink> sinks, InMemorySpool spool)
    {
        _host = host;
        Dns = dns;
        Sinks = sinks;
        Spool = spool;
        Harness = host.Services.GetRequiredService<ITestHarness>();
    }

    public TestDnsServer Dns { get; }

    public IReadOnlyList<SmtpSink> Sinks { get; }

    public SmtpSink Sink => Sinks[0];

    public InMemorySpool Spool { get; }

    /// <summary>The warm-up counters Delivery uses (in memory; the spool's tables have their own tests).</summary>
    public InMemoryPoolCounters Counters => (InMemoryPoolCounters)_host.Services.GetRequiredService<IPoolCounters>();

    public ITestHarness Harness { get; }

    public IServiceProvider Services => _host.Services;

    public static async Task<DeliveryFixture> StartAsync(int sinks = 1, IDictionary<string, string?>? settings = null)
    {
        var smtp = SmtpSink.StartOnSharedPort(sinks);
        var dns = TestDnsServer.Start();
        var spool = new InMemorySpool();

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var configuration = new Dictionary<string, string?>
        {
            ["Dns:Servers"] = dns.EndPoint.ToString(),
            // No test here waits for a DNS timeout, so it is long: at 1 s, a first query answered late on a loaded CI
            // machine (JIT, thread pool) came back TemporaryFailure and deferred a test that expected a bounce (fresh CI, session 25).
            ["Dns:Timeout"] = "00:00:05",
            ["Dns:Retries"] = "0",
            ["Dns:MinTtl"] = "00:00:00",
            ["Delivery:Port"] = smtp[0].Port.ToString(),
            ["Delivery:HeloName"] = "client.mailmesh.test",
            ["Delivery:ConnectTimeout"] = "00:00:05",
            ["Delivery:CommandTimeout"] = "00:00:10",
            ["Delivery:ResolveTimeout"] = "00:00:10",
            // The spool is the in-test one; the storage options only need to validate.
            ["ConnectionStrings:Spool"] = "Host=127.0.0.1;Database=unused",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            configuration[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(configuration);
        builder.Services.AddSingleton<ISpool>(spool);
        builder.Services.AddSingleton<IPoolCounters>(new InMemoryPoolCounters());
        builder.Services.AddSingleton<ISiteActionStore>(new InMemorySiteActionStore());
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddMetrics();
        builder.AddDns();
        builder.AddDelivery();

        // The parts AddDns/AddDelivery contributed (ServiceDefaults' BusExtensions keeps them under this key).
        var parts = (List<Action<IBusRegistrationConfigurator>>)((IHostApplicationBuilder)builder).Properties["MailMesh.BusParts"];
        builder.Services.AddMassTransitTestHarness(bus =>
        {
            foreach (var part in parts)
            {
                part(bus);
            }
        });

        var host = builder.Build();
        await host.StartAsync();
        return new DeliveryFixture(host, dns, smtp, spool);
    }

    /// <summary>
    /// The messages of type <typeparamref name="T"/> the harness has seen consumed, once it has seen at least
    /// <paramref name="atLeast"/> (waiting up to 30 s). The harness records a consume after the consumer returns, so
    /// a requester can hold the response before the record exists: a count read right after the last response can
    /// come up one short (CI run of stop 29). Never enumerate the harness lists synchronously: their blocking Select
    /// can deadlock.
    /// </summary>
    public async Task<List<T>> ConsumedAsync<T>(int atLeast)
        where T : class
    {
        await Eventually.WaitUntilAsync(
            async () => (await ConsumedSoFarAsync<T>()).Count >= atLeast,
            TimeSpan.FromSeconds(30),
            $"fewer than {atLeast} {typeof(T).Name} consumed within 30 s");
        return await ConsumedSoFarAsync<T>();
    }

    private async Task<List<T>> ConsumedSoFarAsync<T>()
        where T : class
    {
        using var now = new CancellationTokenSource();
        await now.CancelAsync();
        var found = new List<T>();
        await foreach (var consumed in Harness.Consumed.SelectAsync<T>(now.Token))
        {
            found.Add(consumed.Context.Message);
        }

        return found;
    }

    /// <summary>Points <paramref name="domain"/>'s MX at the sinks given, preference 10, 20, ... in order.</summary>
    public void Route(string domain, params SmtpSink[] sinks)
    {
        for (var i = 0; i < sinks.Length; i++)
        {
            var host = $"mx{i + 1}.{domain}";
            Dns.AddMx(domain, (i + 1) * 10, host).AddAddress(host, sinks[i].Address.ToString());
        }
    }

    public StoredMessage Store(byte[] content, string sender = "sender@origin.test", BodyType bodyType = BodyType.SevenBit) =>
        Store(new StoredMessage
        {
            Id = Guid.NewGuid(),
            Sender = sender,
            Content = content,
            ReceivedAt = DateTimeOffset.UtcNow,
            Origin = MessageOrigin.Smtp,
            BodyType = bodyType,
            SmtpUtf8 = false,
            RequireTls = false,
            TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        });

    /// <summary>Puts <paramref name="message"/> in the spool as is (with a fresh id when <c>with { }</c> copied).</summary>
    public StoredMessage Store(StoredMessage message)
    {
        Spool.Messages[message.Id] = message;
        return message;
    }

    public static DeliverMessage Request(Guid messageId, string domain, params string[] recipients) => new()
    {
        MessageId = messageId,
        Domain = domain,
        LeaseId = Guid.NewGuid(),
        LeaseExpiresAt = DateTimeOffset.UtcNow.AddMinutes(10),
        Recipients = recipients.Select((address, i) => new DeliveryRecipient { RecipientId = i + 1, Address = address, Attempt = 1 }).ToList(),
    };

    /// <summary>Publishes the request and waits for the attempt with its lease id.</summary>
    public async Task<DeliveryAttempted> DeliverAsync(DeliverMessage request)
    {
        await Harness.Bus.Publish(request);
        return await AttemptedAsync(request.LeaseId);
    }

    /// <summary>Waits (30 s at most) until <paramref name="condition"/> holds: for what a consume does after its result is recorded.</summary>
    public static Task WaitUntilAsync(Func<bool> condition) =>
        Eventually.WaitUntilAsync(condition, TimeSpan.FromSeconds(30), "the condition did not hold within 30 s");

    /// <summary>The result Delivery recorded in the spool's outbox for <paramref name="leaseId"/>.</summary>
    public Task<DeliveryAttempted> AttemptedAsync(Guid leaseId) =>
        Spool.RecordedAsync(leaseId).WaitAsync(TimeSpan.FromSeconds(30));

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        if (_host is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }

        foreach (var sink in Sinks)
        {
            await sink.DisposeAsync();
        }

        Dns.Dispose();
    }
}

/// <summary>
/// Just enough spool for Delivery: messages, lease ownership as <see cref="ISpool.StartAttemptAsync"/> and
/// <see cref="ISpool.RenewLeaseAsync"/> define it, and the result outbox, with switches for the faults Delivery must
/// survive (a lease re-issued by Queue, a spool that refuses result writes).
/// </summary>
internal sealed class InMemorySpool : ISpool
{
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource<DeliveryAttempted>> _recorded = new();
    private int _recordFailures;

    public ConcurrentDictionary<Guid, StoredMessage> Messages { get; } = new();

    /// <summary>Lease id → the attempt that took it.</summary>
    public ConcurrentDictionary<Guid, Guid> Owners { get; } = new();

    /// <summary>Leases Queue has re-issued: they can be neither taken nor renewed, and their results are stale.</summary>
    public ConcurrentDictionary<Guid, bool> Reissued { get; } = new();

    /// <summary>Lease takes (successful or not), renewals and result writes, for tests that count them.</summary>
    public int Takes;
    public int Renewals;
    public int RecordCalls;

    /// <summary>Result writes that recorded (the first and any repeat of the same lease).</summary>
    public int Records;

    /// <summary>While set, renewals and result writes fail as they do while the database restarts.</summary>
    public volatile bool Unreachable;

    /// <summary>Lease takes that commit and then lose their answer (a timeout after the commit), counted down.</summary>
    public int LoseTakeAnswers;

    /// <summary>Called after a lease was taken (a test cuts the database off there).</summary>
    public Action<Guid>? OnTaken { get; set; }

    /// <summary>The next <paramref name="count"/> result writes fail as an unreachable database would.</summary>
    public void FailNextRecords(int count) => Volatile.Write(ref _recordFailures, count);

    /// <summary>The result recorded under <paramref name="leaseId"/>, once it is.</summary>
    public Task<DeliveryAttempted> RecordedAsync(Guid leaseId) => Waiter(leaseId).Task;

    public bool IsRecorded(Guid leaseId) => _recorded.TryGetValue(leaseId, out var waiter) && waiter.Task.IsCompleted;

    public Task<StoredMessage?> GetMessageAsync(Guid messageId, CancellationToken cancellationToken) =>
        Task.FromResult(Messages.TryGetValue(messageId, out var message) ? message : null);

    public Task<StoredMessage?> StartAttemptAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Takes);
        if (Reissued.ContainsKey(leaseId) || IsRecorded(leaseId) || !Messages.TryGetValue(messageId, out var message))
        {
            return Task.FromResult<StoredMessage?>(null);
        }

        if (Owners.GetOrAdd(leaseId, ownerId) != ownerId)
        {
            return Task.FromResult<StoredMessage?>(null);
        }

        OnTaken?.Invoke(leaseId);
        if (Interlocked.Decrement(ref LoseTakeAnswers) >= 0)
        {
            return Task.FromException<StoredMessage?>(new TimeoutException("injected: the take committed, its answer was lost"));
        }

        // As the stores do: a large message's content stays behind, to be streamed with CopyContentAsync; a small one
        // comes inline in a buffer leased for the attempt (RentedContent), which the attempt must give back.
        return Task.FromResult<StoredMessage?>(message.Content.Length > StoredMessage.InlineContentLimit
            ? message with { Content = ReadOnlyMemory<byte>.Empty, DetachedContentLength = message.Content.Length }
            : message with { ContentLease = new ContentLeaseProbe(this) });
    }

    /// <summary>Inline content leases given back (each counted once, however often it is disposed).</summary>
    public int ContentLeasesGivenBack;

    private sealed class ContentLeaseProbe(InMemorySpool spool) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Increment(ref spool.ContentLeasesGivenBack);
            }
        }
    }

    /// <summary>Content streams served (large messages only), for tests that check the detached path ran.</summary>
    public int ContentCopies;

    /// <summary>While set, streaming content fails as a database that went away mid-read would.</summary>
    public volatile bool FailContentCopies;

    public async Task<bool> CopyContentAsync(Guid messageId, Stream destination, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref ContentCopies);
        if (!Messages.TryGetValue(messageId, out var message))
        {
            return false;
        }

        if (FailContentCopies)
        {
            await destination.WriteAsync(message.Content[..1024], cancellationToken);
            throw new TimeoutException("injected: the database went away while the content was read");
        }

        // In pieces, as a store streams it.
        for (var offset = 0; offset < message.Content.Length; offset += 64 * 1024)
        {
            await destination.WriteAsync(message.Content[offset..Math.Min(message.Content.Length, offset + (64 * 1024))], cancellationToken);
        }

        return true;
    }

    public Task<bool> RenewLeaseAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Renewals);
        if (Unreachable)
        {
            return Task.FromException<bool>(new TimeoutException("injected: the database is restarting"));
        }

        return Task.FromResult(!Reissued.ContainsKey(leaseId) && Owners.TryGetValue(leaseId, out var owner) && owner == ownerId);
    }

    public Task<bool> RecordResultAsync(PendingResult result, DateTimeOffset now, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref RecordCalls);
        if (Interlocked.Decrement(ref _recordFailures) >= 0 || Unreachable)
        {
            throw new TimeoutException("injected: the spool is unreachable");
        }

        if (Reissued.ContainsKey(result.LeaseId))
        {
            return Task.FromResult(false);
        }

        Interlocked.Increment(ref Records);
        Waiter(result.LeaseId).TrySetResult(System.Text.Json.JsonSerializer.Deserialize<DeliveryAttempted>(result.Payload)!);
        return Task.FromResult(true);
    }

    private TaskCompletionSource<DeliveryAttempted> Waiter(Guid leaseId) =>
        _recorded.GetOrAdd(leaseId, static _ => new TaskCompletionSource<DeliveryAttempted>(TaskCreationOptions.RunContinuationsAsynchronously));

    public Task<bool> StoreAsync(NewMessage message, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(DateTimeOffset now, int maxRecipients, TimeSpan leaseDuration, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    public Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(ClaimRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<IReadOnlyList<RecipientUpdate>> CompleteAttemptAsync(Guid messageId, Guid leaseId, IReadOnlyList<RecipientUpdate> updates, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    public Task<IReadOnlyList<PendingResult>> ClaimResultsAsync(DateTimeOffset now, int maxResults, TimeSpan retryAfter, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    public Task DeleteResultsAsync(IReadOnlyList<Guid> leaseIds, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<MessageStatus?> GetStatusAsync(Guid messageId, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<IReadOnlyList<IReadOnlyList<RecipientUpdate>>> CompleteAttemptsAsync(IReadOnlyList<AttemptCompletion> attempts, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    public Task<IReadOnlyDictionary<Guid, MessageStatus>> GetStatusesAsync(IReadOnlyCollection<Guid> messageIds, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    public Task<int> ReleaseLeasesAsync(DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<LeaseClockPause?> BeatLeaseClockAsync(DateTimeOffset now, TimeSpan maxGap, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task PingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<IReadOnlyDictionary<RecipientState, long>> CountByStateAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<RecipientState, long>>(new Dictionary<RecipientState, long>());

    public Task<int> PurgeCompletedAsync(DateTimeOffset olderThan, CancellationToken cancellationToken) => throw new NotSupportedException();
}
