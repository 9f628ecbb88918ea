using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// Publishes Queue's notifications (<c>MessageEvent</c>, the <c>MessageReceived</c> that wakes the scheduler for a
/// new DSN) best-effort, each bounded by <see cref="QueueOptions.PublishTimeout"/>. They are hints: the spool already
/// holds what they announce, so a broker outage must never stop a result from being applied or a round from ending.
/// </summary>
internal sealed class QueueEvents(IBus bus, IOptions<QueueOptions> options, TimeProvider time, ILogger<QueueEvents> logger)
{
    private readonly TimeSpan _timeout = options.Value.PublishTimeout;

    public async Task PublishAsync<T>(T message, CancellationToken cancellationToken)
        where T : class
    {
        try
        {
            await Bounded.RunAsync(token => bus.Publish(message, token), "publish " + typeof(T).Name, _timeout, time, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.EventPublishFailed(ex, typeof(T).Name);
        }
    }
}
