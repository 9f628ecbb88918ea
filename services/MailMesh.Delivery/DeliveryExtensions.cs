using MailMesh.Contracts;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MassTransit;

namespace MailMesh.Delivery;

public static class DeliveryExtensions
{
    /// <summary>
    /// Registers the Delivery service: options, the spool, the TLS trust anchors, the connection pool, the SMTP agent, the
    /// <c>DeliverMessage</c> consumer and the <c>ResolveMx</c> request client.
    /// </summary>
    public static IHostApplicationBuilder AddDelivery(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddMailMeshStorage();
        builder.Services.AddValidatedOptions<DeliveryOptions>();
        builder.Services.AddSingleton<DeliveryMetrics>();
        builder.Services.AddSingleton<TlsTrust>();
        builder.Services.AddSingleton<SmtpConnectionPool>();
        builder.Services.AddSingleton<SmtpDeliveryAgent>();
        builder.AddBusPart(bus =>
        {
            bus.AddConsumer<DeliverMessageConsumer, DeliverMessageConsumerDefinition>();
            bus.AddRequestClient<ResolveMx>();
        });
        return builder;
    }
}
