using MailMesh.Policy.Content;
using MailMesh.Policy.Dkim;
using MailMesh.Policy.Dmarc;
using MailMesh.Policy.Dnsbl;
using MailMesh.Policy.Scanning;
using MailMesh.Policy.Spf;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy;

public static class PolicyExtensions
{
    /// <summary>
    /// Registers the Policy service: its rules (<see cref="AddPolicyChecks"/>), admin API keys and the suppression API's
    /// dependencies. It has no bus consumers: the inline checks run in the Ingress process (<see cref="PolicyChecks"/>).
    /// </summary>
    public static IHostApplicationBuilder AddPolicy(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddPolicyChecks();
        builder.AddAdminAuthentication();
        builder.Services.AddHealthChecks().AddCheck<PolicyStoreHealthCheck>(PolicyStoreHealthCheck.Name, tags: [ServiceDefaultsExtensions.ReadyTag]);
        return builder;
    }

    /// <summary>
    /// Policy's rules for the process that asks them (Ingress, Standalone): <c>Policy:*</c> options validated at start,
    /// the policy store, the engine and <see cref="IPolicyChecks"/>, and the start-up warning about broad relay networks.
    /// Safe to call more than once (Standalone hosts both Ingress and Policy).
    /// </summary>
    public static IHostApplicationBuilder AddPolicyChecks(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddMailMeshStorage(defaultMaxPoolSize: 5);
        builder.Services.AddPolicyServices();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RelayNetworkCheck>());
        return builder;
    }

    /// <summary>Everything but hosting (tests compose these over a store of their own).</summary>
    internal static IServiceCollection AddPolicyServices(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(PolicyEngine)))
        {
            return services;
        }

        services.AddValidatedOptions<PolicyOptions>();
        services.AddValidatedOptions<MailboxDomainsOptions>();
        services.AddValidatedOptions<MailMesh.ServiceDefaults.Bounces.ReturnPathOptions>();

        // Policy:AuthServId (older key Policy:Spf:AuthServId), else this host's SMTP name: Authentication-Results and
        // Received-SPF name the same receiver.
        services.AddValidatedOptions<AuthServIdOptions>().PostConfigure<IConfiguration>((auth, configuration) =>
            auth.AuthServId = AuthServIdOf(configuration));

        // Policy:Spf: the resolvers default to the ones Delivery uses.
        services.AddValidatedOptions<SpfOptions>().PostConfigure<IConfiguration>((spf, configuration) =>
        {
            if (string.IsNullOrWhiteSpace(spf.AuthServId))
            {
                spf.AuthServId = AuthServIdOf(configuration);
            }

            if (string.IsNullOrWhiteSpace(spf.DnsServers))
            {
                spf.DnsServers = configuration["Dns:Servers"];
            }
        });
        services.AddSingleton<SpfChecker>();
        services.AddScanners();
        services.AddDnsbl();
        services.AddMetrics();
        services.AddSingleton<PolicyMetrics>();
        services.AddSingleton<RelayRules>();
        services.AddSingleton<PolicyEngine>();
        services.AddSingleton<IPolicyChecks, PolicyChecks>();

        // Inbound authentication (issue 10): DKIM, ARC and DMARC, one content check; each part off by default.
        services.AddValidatedOptions<DkimVerifyOptions>();
        services.AddValidatedOptions<ArcVerifyOptions>();
        services.AddValidatedOptions<DmarcOptions>();
        services.AddSingleton<AuthenticationDns>();
        services.AddSingleton<DnsKeyLocator>();
        services.AddSingleton<DkimVerification>();
        services.AddSingleton<ArcVerification>();
        services.AddSingleton<DmarcEvaluator>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IContentCheck, MessageAuthentication>());

        // End-of-data content checks (Policy:Content): every IContentCheck registered, in order.
        services.AddValidatedOptions<ContentCheckOptions>();
        services.AddSingleton(sp => new ContentChecks(
            sp.GetServices<IContentCheck>(),
            sp.GetRequiredService<IOptions<ContentCheckOptions>>(),
            sp.GetRequiredService<IOptions<AuthServIdOptions>>(),
            sp.GetRequiredService<IOptions<SpfOptions>>(),
            sp.GetRequiredService<SpfChecker>(),
            sp.GetRequiredService<RelayRules>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<ContentChecks>>()));
        return services;
    }

    /// <summary>The authserv-id: Policy:AuthServId, Policy:Spf:AuthServId, Ingress:HostName, the machine name.</summary>
    private static string AuthServIdOf(IConfiguration configuration) =>
        new[] { configuration["Policy:AuthServId"], configuration["Policy:Spf:AuthServId"], configuration["Ingress:HostName"] }
            .FirstOrDefault(v => !string.IsNullOrWhiteSpace(v)) ?? Environment.MachineName.ToLowerInvariant();
}
