using System.Collections.Concurrent;
using System.Net;
using MailMesh.Contracts;
using MailMesh.Policy;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>What the test's Policy rules answer; a null decision means "never answer" (a hung policy store).</summary>
internal sealed class PolicyScript
{
    public Func<CheckConnection, PolicyDecision?> Connection { get; set; } = _ => PolicyDecision.Accept;

    public Func<CheckRecipient, PolicyDecision?> Recipient { get; set; } = _ => PolicyDecision.Accept;

    public Func<CheckMessage, PolicyDecision?> Message { get; set; } = _ => PolicyDecision.Accept;

    public ConcurrentQueue<object> Asked { get; } = new();
}

/// <summary>A stand-in for Policy's rules: answers from the script; a null answer never comes (Ingress:PolicyTimeout).</summary>
internal sealed class ScriptedPolicyChecks(PolicyScript script) : IPolicyChecks
{
    public Task<PolicyDecision> CheckConnectionAsync(CheckConnection request, CancellationToken cancellationToken) =>
        AnswerAsync(request, script.Connection(request), cancellationToken);

    public Task<PolicyDecision> CheckRecipientAsync(CheckRecipient request, CancellationToken cancellationToken) =>
        AnswerAsync(request, script.Recipient(request), cancellationToken);

    public Task<PolicyDecision> CheckMessageAsync(CheckMessage request, CancellationToken cancellationToken) =>
        AnswerAsync(request, script.Message(request), cancellationToken);

    private async Task<PolicyDecision> AnswerAsync(object request, PolicyDecision? decision, CancellationToken cancellationToken)
    {
        script.Asked.Enqueue(request);
        if (decision is null)
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
        }

        return decision!;
    }
}

/// <summary>Collects the announced messages (MessagesReceived batches, one by one).</summary>
internal sealed class Announcements
{
    private readonly TaskCompletionSource<MessageReceived> _first = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConcurrentQueue<MessageReceived> Received { get; } = new();

    public Task<MessageReceived> First => _first.Task;

    public void Add(MessageReceived message)
    {
        Received.Enqueue(message);
        _first.TrySetResult(message);
    }
}

internal sealed class MessageReceivedConsumer(Announcements announcements) : IConsumer<MessageReceived>, IConsumer<MessagesReceived>
{
    public Task Consume(ConsumeContext<MessageReceived> context)
    {
        announcements.Add(context.Message);
        return Task.CompletedTask;
    }

    public Task Consume(ConsumeContext<MessagesReceived> context)
    {
        foreach (var message in context.Message.Messages)
        {
            announcements.Add(message);
        }

        return Task.CompletedTask;
    }
}

/// <summary>Wraps the real (SQLite) spool so a test can make the store fail or watch it.</summary>
internal sealed class TestSpool(ISpool inner) : ISpool
{
    public Func<NewMessage, CancellationToken, Task>? BeforeStore { get; set; }

    public ConcurrentQueue<Guid> Stored { get; } = new();

    public ISpool Inner => inner;

    public async Task<bool> StoreAsync(NewMessage message, CancellationToken cancellationToken)
    {
        if (BeforeStore is { } hook)
        {
            await hook(message, cancellationToken);
        }

        var result = await inner.StoreAsync(message, cancellationToken);
        Stored.Enqueue(message.Id);
        return result;
    }

    public Task<StoredMessage?> GetMessageAsync(Guid messageId, CancellationToken cancellationToken) => inner.GetMessageAsync(messageId, cancellationToken);

    public Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(DateTimeOffset now, int maxRecipients, TimeSpan leaseDuration, CancellationToken cancellationToken) =>
        inner.ClaimDueAsync(now, maxRecipients, leaseDuration, cancellationToken);

    public Task<IReadOnlyList<RecipientUpdate>> CompleteAttemptAsync(Guid messageId, Guid leaseId, IReadOnlyList<RecipientUpdate> updates, CancellationToken cancellationToken) =>
        inner.CompleteAttemptAsync(messageId, leaseId, updates, cancellationToken);

    public Task<MessageStatus?> GetStatusAsync(Guid messageId, CancellationToken cancellationToken) => inner.GetStatusAsync(messageId, cancellationToken);

    public Task<IReadOnlyList<IReadOnlyList<RecipientUpdate>>> CompleteAttemptsAsync(IReadOnlyList<AttemptCompletion> attempts, CancellationToken cancellationToken) =>
        inner.CompleteAttemptsAsync(attempts, cancellationToken);

    public Task<IReadOnlyDictionary<Guid, MessageStatus>> GetStatusesAsync(IReadOnlyCollection<Guid> messageIds, CancellationToken cancellationToken) =>
        inner.GetStatusesAsync(messageIds, cancellationToken);

    public Task<int> ReleaseLeasesAsync(DateTimeOffset now, CancellationToken cancellationToken) => inner.ReleaseLeasesAsync(now, cancellationToken);

    public Task PingAsync(CancellationToken cancellationToken) => inner.PingAsync(cancellationToken);

    public Task<IReadOnlyDictionary<RecipientState, long>> CountByStateAsync(CancellationToken cancellationToken) => inner.CountByStateAsync(cancellationToken);

    public Task<int> PurgeCompletedAsync(DateTimeOffset olderThan, CancellationToken cancellationToken) => inner.PurgeCompletedAsync(olderThan, cancellationToken);

    public Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(ClaimRequest request, CancellationToken cancellationToken) => inner.ClaimDueAsync(request, cancellationToken);

    public Task<StoredMessage?> StartAttemptAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken) =>
        inner.StartAttemptAsync(messageId, leaseId, ownerId, leaseExpiresAt, cancellationToken);

    public Task<bool> CopyContentAsync(Guid messageId, Stream destination, CancellationToken cancellationToken) =>
        inner.CopyContentAsync(messageId, destination, cancellationToken);

    public Task<bool> RenewLeaseAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken) =>
        inner.RenewLeaseAsync(messageId, leaseId, ownerId, leaseExpiresAt, cancellationToken);

    public Task<bool> RecordResultAsync(PendingResult result, DateTimeOffset now, CancellationToken cancellationToken) => inner.RecordResultAsync(result, now, cancellationToken);

    public Task<IReadOnlyList<PendingResult>> ClaimResultsAsync(DateTimeOffset now, int maxResults, TimeSpan retryAfter, CancellationToken cancellationToken) =>
        inner.ClaimResultsAsync(now, maxResults, retryAfter, cancellationToken);

    public Task DeleteResultsAsync(IReadOnlyList<Guid> leaseIds, CancellationToken cancellationToken) => inner.DeleteResultsAsync(leaseIds, cancellationToken);

    public Task<LeaseClockPause?> BeatLeaseClockAsync(DateTimeOffset now, TimeSpan maxGap, CancellationToken cancellationToken) =>
        inner.BeatLeaseClockAsync(now, maxGap, cancellationToken);
}

/// <summary>
/// The real Ingress in-process: AddServiceDefaults + AddIngress + the in-memory bus, SMTP on 127.0.0.1:0, a SQLite
/// spool in a temporary directory, and a scripted Policy responder.
/// </summary>
internal sealed class IngressHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _directory;

    private IngressHost(WebApplication app, string directory)
    {
        _app = app;
        _directory = directory;
    }

    public PolicyScript Policy => _app.Services.GetRequiredService<PolicyScript>();

    public TestSpool Spool => _app.Services.GetRequiredService<TestSpool>();

    public Announcements Announcements => _app.Services.GetRequiredService<Announcements>();

    public IPEndPoint SmtpEndPoint => _app.Services.GetRequiredService<IngressEndpoints>().Smtp[0];

    public IPEndPoint SubmissionEndPoint => _app.Services.GetRequiredService<IngressEndpoints>().Submission[0];

    public IPEndPoint ImplicitTlsEndPoint => _app.Services.GetRequiredService<IngressEndpoints>().ImplicitTls[0];

    public IServiceProvider Services => _app.Services;

    public const string HostName = "mx.test.example";

    /// <param name="settings">Configuration overrides.</param>
    /// <param name="configure">Service overrides.</param>
    /// <param name="realPolicy">Run Policy's real rules (AddPolicy) instead of the scripted ones.</param>
    public static async Task<IngressHost> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? configure = null, bool realPolicy = false)
    {
        var directory = Directory.CreateTempSubdirectory("mailmesh-ingress-").FullName;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        var configuration = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Ingress:Listen"] = "127.0.0.1:0",
            ["Ingress:HostName"] = HostName,
            ["Ingress:PolicyTimeout"] = "00:00:05",
            ["Ingress:SpoolTimeout"] = "00:00:05",
            ["Storage:Provider"] = "sqlite",
            ["Storage:SqlitePath"] = Path.Combine(directory, "spool.db"),
            ["Storage:MigrateOnStart"] = "true",
        };
        foreach (var (key, value) in settings ?? [])
        {
            configuration[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(configuration);
        builder.AddServiceDefaults("mailmesh-ingress-tests");
        builder.AddIngress();
        builder.Services.AddSingleton<PolicyScript>();
        builder.Services.AddSingleton<Announcements>();
        if (realPolicy)
        {
            builder.AddPolicy();
        }

        else
        {
            builder.Services.RemoveAll<IPolicyChecks>();
            builder.Services.AddSingleton<IPolicyChecks, ScriptedPolicyChecks>();
        }

        builder.AddBusPart(bus => bus.AddConsumer<MessageReceivedConsumer>());
        builder.AddMailMeshBus(BusTransport.InMemory);
        builder.Services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);

        // Decorate the spool the storage registration made, so tests can fail or observe it.
        var spool = builder.Services.Last(d => d.ServiceType == typeof(ISpool));
        builder.Services.Remove(spool);
        builder.Services.AddSingleton(sp => new TestSpool((ISpool)spool.ImplementationFactory!(sp)));
        builder.Services.AddSingleton<ISpool>(sp => sp.GetRequiredService<TestSpool>());
        configure?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        return new IngressHost(app, directory);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
