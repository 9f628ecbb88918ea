using System.Net.Http.Headers;
using MailMesh.Contracts;
using MailMesh.Queue.Webhooks;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Queue.Tests.Webhooks;

/// <summary>
/// The Queue service as its Program.cs runs it (admin API on 127.0.0.1 and a free port, the in-memory bus, a SQLite
/// spool in a temporary file), with an admin key for webhooks and one that may only read them.
/// </summary>
internal sealed class StoredWebhookHost : IAsyncDisposable
{
    public const string WriterKey = "mmk_test-webhooks-writer";
    public const string ReaderKey = "mmk_test-webhooks-reader";

    private readonly WebApplication _app;
    private readonly string _directory;

    private StoredWebhookHost(WebApplication app, string directory, Uri baseAddress)
    {
        _app = app;
        _directory = directory;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public IServiceProvider Services => _app.Services;

    public IWebhookStore Store => Services.GetRequiredService<IWebhookStore>();

    public StoredWebhooks Stored => Services.GetRequiredService<StoredWebhooks>();

    public static async Task<StoredWebhookHost> StartAsync(IDictionary<string, string>? settings = null)
    {
        MessageEventWebhookConsumerDefinition.RetryIntervals = [TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20)];
        var directory = Path.Combine(Path.GetTempPath(), "mailmesh-queue-tests", Guid.NewGuid().ToString("N"));
        var all = new Dictionary<string, string>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Storage:Provider"] = "Sqlite",
            ["Storage:SqlitePath"] = Path.Combine(directory, "spool.db"),
            ["Storage:MigrateOnStart"] = "true",
            ["Queue:Hostname"] = "mx.mailmesh.test",
            ["Queue:Webhooks:RefreshInterval"] = "00:00:00.100",
            ["Admin:ApiKeys:0:Name"] = "hooks-admin",
            ["Admin:ApiKeys:0:Hash"] = ApiKeys.Hash(WriterKey),
            ["Admin:ApiKeys:0:Scopes"] = $"{AdminScopes.WebhooksRead} {AdminScopes.WebhooksWrite} {AdminScopes.AuditRead}",
            ["Admin:ApiKeys:1:Name"] = "hooks-reader",
            ["Admin:ApiKeys:1:Hash"] = ApiKeys.Hash(ReaderKey),
            ["Admin:ApiKeys:1:Scopes"] = AdminScopes.WebhooksRead,
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            all[key] = value;
        }

        var app = ServiceHost.Create(
            [.. all.Select(s => $"--{s.Key}={s.Value}")],
            "mailmesh-queue",
            builder => builder.AddQueue(),
            app => app.MapQueueAdminEndpoints(),
            BusTransport.InMemory);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new StoredWebhookHost(app, directory, new Uri(address));
    }

    public HttpClient Client(string? key = WriterKey)
    {
        var http = new HttpClient { BaseAddress = BaseAddress };
        if (key is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return http;
    }

    /// <summary>Publishes a message event on the Queue's bus, as Queue does when a recipient's state changes.</summary>
    public async Task<MessageEvent> PublishAsync(MessageEventType type)
    {
        var message = new MessageEvent { MessageId = Guid.NewGuid(), Type = type, Recipient = "someone@dest.example", Timestamp = DateTimeOffset.UtcNow };
        await Services.GetRequiredService<IBus>().Publish(message);
        return message;
    }

    /// <summary>Polls <paramref name="probe"/> until it returns a value, or fails the test after 15 seconds.</summary>
    public static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe)
        where T : class
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (true)
        {
            if (await probe() is { } value)
            {
                return value;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), timeout.Token);
        }
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
            // A temp directory left behind is harmless.
        }
    }
}
