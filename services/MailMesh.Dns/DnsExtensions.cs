using MailMesh.ServiceDefaults;
using MassTransit;

namespace MailMesh.Dns;

public static class DnsExtensions
{
    /// <summary>Registers the Dns service: options, the caching MX resolver and the <c>ResolveMx</c> consumer.</summary>
    public static IHostApplicationBuilder AddDns(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddValidatedOptions<DnsOptions>();
        builder.Services.AddSingleton<DnsMetrics>();
        builder.Services.AddSingleton<MxResolver>();
        builder.AddBusPart(bus => bus.AddConsumer<ResolveMxConsumer, ResolveMxConsumerDefinition>());
        return builder;
    }
}
