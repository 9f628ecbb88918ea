namespace MailMesh.Ingress;

public static class IngressExtensions
{
    /// <summary>Registers the Ingress service: options, consumers, background work.</summary>
    public static IHostApplicationBuilder AddIngress(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder;
    }
}
