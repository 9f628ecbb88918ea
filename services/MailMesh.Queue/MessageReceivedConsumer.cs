using MailMesh.Contracts;
using MassTransit;

namespace MailMesh.Queue;

/// <summary>
/// A new message is in the spool: wake the scheduler so it is claimed now rather than at the next poll. The message
/// itself is not needed — the scheduler claims whatever is due — so a lost MessageReceived only costs one poll interval.
/// </summary>
internal sealed class MessageReceivedConsumer(SchedulerSignal signal) : IConsumer<MessageReceived>
{
    public Task Consume(ConsumeContext<MessageReceived> context)
    {
        signal.Poke();
        return Task.CompletedTask;
    }
}

internal sealed class MessageReceivedConsumerDefinition : ConsumerDefinition<MessageReceivedConsumer>
{
    public MessageReceivedConsumerDefinition()
    {
        // Service-qualified queue name: other services may consume MessageReceived too, each on its own queue.
        EndpointName = "queue-message-received";
        ConcurrentMessageLimit = 16;
    }
}

internal sealed class DeliveryAttemptedConsumerDefinition : ConsumerDefinition<DeliveryAttemptedConsumer>
{
    /// <summary>Retry intervals for transient spool errors (a database failover, a lock timeout).</summary>
    internal static TimeSpan[] RetryIntervals { get; set; } =
        [TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15)];

    public DeliveryAttemptedConsumerDefinition()
    {
        EndpointName = "queue-delivery-attempted";

        // Each result is a few short transactions; 32 keeps a pool of database connections busy without hogging it.
        ConcurrentMessageLimit = 32;
    }

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<DeliveryAttemptedConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        // Safe to retry: CompleteAttemptAsync applies each update at most once and DSN ids are deterministic. No
        // outbox on purpose: events are published as soon as their update is applied, because a retry will not apply
        // (and so not re-announce) it again.
        endpointConfigurator.UseMessageRetry(retry =>
        {
            retry.Ignore<ArgumentException>();
            retry.Intervals(RetryIntervals);
        });
    }
}
