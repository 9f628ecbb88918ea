namespace MailMesh.Delivery;

public static class DeliveryExtensions
{
    /// <summary>Registers the Delivery service: options, consumers, background work.</summary>
    public static IHostApplicationBuilder AddDelivery(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder;
    }
}
