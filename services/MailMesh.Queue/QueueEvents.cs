using MailMesh.Contracts;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// Publishes Queue's notifications (<see cref="MessageEvents"/>, the <c>MessageReceived</c> that wakes the scheduler for
/// a new DSN) best-effort, each bounded by <see cref="QueueOptions.PublishTimeout"/>. They are hints: the spool already
/// holds what they announce, so a broker outage must never stop a result from being applied or a round from ending.
/// </summary>
/// <remarks>
/// Message events always travel in batches (<see cref="MessageEvents"/>, issue 8): a step that makes several, such as
/// applying a batch of results, publishes them in one bus message; a single event is a batch of one. Each event gets its
/// <see cref="MessageEvent.EventId"/> here, so a webhook retry of the batch sends every event under its own, stable id.
/// </remarks>
internal sealed class QueueEvents(IBus bus, IOptions<QueueOptions> options, TimeProvider time, ILogger<QueueEvents> logger)
{
    private readonly TimeSpan _timeout = options.Value.PublishTimeout;

    /// <summary>Publishes one event (as a batch of one).</summary>
    public Task PublishAsync(MessageEvent messageEvent, CancellationToken cancellationToken) =>
        PublishAsync([messageEvent], cancellationToken);

    /// <summary>Publishes these events, in this order, as one <see cref="MessageEvents"/>; nothing when there are none.</summary>
    public Task PublishAsync(IReadOnlyCollection<MessageEvent> messageEvents, CancellationToken cancellationToken)
    {
        if (messageEvents.Count == 0)
        {
            return Task.CompletedTask;
        }

        var batch = new MessageEvents { Events = [.. messageEvents.Select(e => e.EventId is null ? e with { EventId = NewId.NextGuid() } : e)] };
        return PublishAsync(batch, cancellationToken);
    }

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
