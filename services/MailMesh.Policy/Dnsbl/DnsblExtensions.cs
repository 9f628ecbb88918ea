using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Dnsbl;

internal static class DnsblExtensions
{
    /// <summary>Policy:Dnsbl, validated at start (resolvers default to Dns:Servers, as SPF's do), and its checker.</summary>
    public static IServiceCollection AddDnsbl(this IServiceCollection services)
    {
        services.AddValidatedOptions<DnsblOptions>().PostConfigure<IConfiguration>((dnsbl, configuration) =>
        {
            if (string.IsNullOrWhiteSpace(dnsbl.DnsServers))
            {
                dnsbl.DnsServers = configuration["Dns:Servers"];
            }
        });
        services.AddSingleton<DnsblChecker>();
        return services;
    }
}
