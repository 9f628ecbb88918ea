using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MassTransit;

namespace MailMesh.Policy;

public static class PolicyExtensions
{
    /// <summary>Registers the Policy service: options, the policy store, admin API keys, the inline-check consumers.</summary>
    public static IHostApplicationBuilder AddPolicy(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddMailMeshStorage();
        builder.AddAdminAuthentication();
        builder.Services.AddPolicyServices();
        builder.Services.AddHostedService<RelayNetworkCheck>();
        builder.Services.AddHealthChecks().AddCheck<PolicyStoreHealthCheck>(PolicyStoreHealthCheck.Name, tags: [ServiceDefaultsExtensions.ReadyTag]);
        builder.AddBusPart(AddPolicyConsumers);
        return builder;
    }

    /// <summary>Everything but the bus (tests compose these with the test harness).</summary>
    internal static IServiceCollection AddPolicyServices(this IServiceCollection services)
    {
        services.AddValidatedOptions<PolicyOptions>();
        services.AddMetrics();
        services.AddSingleton<PolicyMetrics>();
        services.AddSingleton<RelayRules>();
        services.AddSingleton<PolicyEngine>();
        return services;
    }

    internal static void AddPolicyConsumers(IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<CheckConnectionConsumer, PolicyConsumerDefinition<CheckConnectionConsumer>>();
        bus.AddConsumer<CheckRecipientConsumer, PolicyConsumerDefinition<CheckRecipientConsumer>>();
        bus.AddConsumer<CheckMessageConsumer, PolicyConsumerDefinition<CheckMessageConsumer>>();
    }
}
