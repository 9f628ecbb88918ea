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
            ["Dns:Timeout"] = "00:00:01",
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

    public async Task<DeliveryAttempted> AttemptedAsync(Guid leaseId)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var published in Harness.Published.SelectAsync<DeliveryAttempted>(timeout.Token))
        {
            if (published.Context.Message.LeaseId == leaseId)
            {
                return published.Context.Message;
            }
        }

        throw new TimeoutException($"No DeliveryAttempted for lease {leaseId}");
    }

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

/// <summary>Just enough spool for Delivery: GetMessageAsync.</summary>
internal sealed class InMemorySpool : ISpool
{
    public ConcurrentDictionary<Guid, StoredMessage> Messages { get; } = new();

    public Task<StoredMessage?> GetMessageAsync(Guid messageId, CancellationToken cancellationToken) =>
        Task.FromResult(Messages.TryGetValue(messageId, out var message) ? message : null);

    public Task<bool> StoreAsync(NewMessage message, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(DateTimeOffset now, int maxRecipients, TimeSpan leaseDuration, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    public Task<IReadOnlyList<RecipientUpdate>> CompleteAttemptAsync(Guid messageId, Guid leaseId, IReadOnlyList<RecipientUpdate> updates, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    public Task<MessageStatus?> GetStatusAsync(Guid messageId, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<int> ReleaseLeasesAsync(DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task PingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<IReadOnlyDictionary<RecipientState, long>> CountByStateAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<RecipientState, long>>(new Dictionary<RecipientState, long>());

    public Task<int> PurgeCompletedAsync(DateTimeOffset olderThan, CancellationToken cancellationToken) => throw new NotSupportedException();
}
