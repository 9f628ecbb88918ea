using MailMesh.Queue.Webhooks;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Bounces;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MassTransit;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MailMesh.Queue;

public static class QueueExtensions
{
    /// <summary>Registers the Queue service: options, spool, consumers, the scheduler and the purger.</summary>
    public static IHostApplicationBuilder AddQueue(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddMailMeshStorage(defaultMaxPoolSize: 20);
        builder.AddAdminAuthentication();
        builder.Services.AddQueueServices();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<DeliveryScheduler>());
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ResultApplier>());
        builder.Services.AddHostedService<CompletedMessagePurger>();
        AddStoreCheckOnce(builder.Services);
        builder.AddBusPart(AddQueueConsumers);
        builder.AddWebhooks();
        return builder;
    }

    /// <summary>The spool readiness check, once even when Standalone registers several services on one host.</summary>
    private static void AddStoreCheckOnce(IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(StoreCheckMarker)))
        {
            services.AddSingleton<StoreCheckMarker>();
            services.AddHealthChecks().AddStoreCheck();
            services.AddHealthChecks().AddCheck<QueueLoopMonitor>("queue-loops", tags: [ServiceDefaultsExtensions.ReadyTag]);
        }
    }

    /// <summary>Everything but the hosted services and the bus (tests compose these with the test harness).</summary>
    internal static IServiceCollection AddQueueServices(this IServiceCollection services)
    {
        services.AddValidatedOptions<QueueOptions>();
        services.AddValidatedOptions<MailboxDomainsOptions>();
        services.AddValidatedOptions<MailMesh.ServiceDefaults.Bounces.ReturnPathOptions>();
        services.AddBounceClassifier();
        services.AddSingleton<ReturnedMail>();
        services.AddMetrics();
        services.AddSingleton<QueueMetrics>();
        services.AddSingleton<RetrySchedule>();
        services.AddSingleton<SchedulerSignal>();
        services.AddSingleton<DsnWriter>();
        services.AddSingleton<DeliveryScheduler>();
        services.AddSingleton<QueueLoopMonitor>();
        services.AddSingleton<QueueEvents>();
        services.AddSingleton<ResultSignal>();
        services.AddSingleton<ResultApplier>();
        services.AddSingleton<AdminActions>();
        services.TryAddScoped<DeliveryAttemptedConsumer>();
        return services;
    }

    internal static void AddQueueConsumers(IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<MessageReceivedConsumer, MessageReceivedConsumerDefinition>();
        bus.AddConsumer<DeliveryAttemptedConsumer, DeliveryAttemptedConsumerDefinition>();
    }

    private sealed class StoreCheckMarker;
}
