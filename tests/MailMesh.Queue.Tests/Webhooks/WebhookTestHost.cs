using MailMesh.Queue.Webhooks;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Queue.Tests.Webhooks;

/// <summary>The webhook consumer on MassTransit's in-memory test harness, configured from <c>Queue:Webhooks:*</c> keys.</summary>
internal sealed class WebhookTestHost : IAsyncDisposable
{
    private WebhookTestHost(ServiceProvider provider) => Provider = provider;

    /// <summary>The consumer's retry intervals in these tests: a failing POST is tried three times in all.</summary>
    public static TimeSpan[] RetryIntervals { get; } = [TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20)];

    public ServiceProvider Provider { get; }
    public BusProbe Probe { get; } = new();
    public ITestHarness Harness => Provider.GetRequiredService<ITestHarness>();

    public static ServiceProvider BuildServices(IDictionary<string, string?> settings, Action<IServiceCollection>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddLogging();
        services.AddSingleton(TimeProvider.System);
        services.AddWebhookServices();
        configure?.Invoke(services);
        return services.BuildServiceProvider(validateScopes: true);
    }

    public static async Task<WebhookTestHost> StartAsync(IDictionary<string, string?> settings)
    {
        MessageEventWebhookConsumerDefinition.RetryIntervals = RetryIntervals;
        var provider = BuildServices(settings, services => services.AddMassTransitTestHarness(bus =>
        {
            WebhookExtensions.AddWebhookConsumer(bus);
            bus.SetTestTimeouts(testInactivityTimeout: TimeSpan.FromSeconds(10));
        }));
        var host = new WebhookTestHost(provider);
        await host.Harness.Start();
        host.Harness.Bus.ConnectConsumeObserver(host.Probe);
        return host;
    }

    /// <summary>
    /// Waits until the consumer is done with <paramref name="messageId"/>'s event of <paramref name="type"/> (the consume
    /// observer sees the outcome after the retries) and asserts it succeeded.
    /// </summary>
    public async Task ConsumedAsync(Guid messageId, Contracts.MessageEventType type)
    {
        await Probe.WaitConsumedAsync<Contracts.MessageEvent>(m => m.MessageId == messageId && m.Type == type);
        var consumed = Assert.Single(Probe.Consumed<Contracts.MessageEvent>(), c => c.Message.MessageId == messageId && c.Message.Type == type);
        Assert.Null(consumed.Fault);
    }

    public async ValueTask DisposeAsync()
    {
        await Harness.Stop();
        await Provider.DisposeAsync();
    }
}
