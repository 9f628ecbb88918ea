using MailMesh.Contracts;
using MassTransit;

namespace MailMesh.Queue;

/// <summary>
/// A new message is in the spool: wake the scheduler so it is claimed now rather than at the next poll. The message
/// itself is not needed — the scheduler claims whatever is due — so a lost MessageReceived only costs one poll interval.
/// </summary>
/// <remarks>Ingress announces its messages in batches (<see cref="MessagesReceived"/>): one wake-up for all of them.</remarks>
internal sealed class MessageReceivedConsumer(SchedulerSignal signal) : IConsumer<MessageReceived>, IConsumer<MessagesReceived>
{
    public Task Consume(ConsumeContext<MessageReceived> context)
    {
        signal.Poke();
        return Task.CompletedTask;
    }

    public Task Consume(ConsumeContext<MessagesReceived> context)
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

        // One short write per result; 8 keeps the database connections this needs small (docs/operations.md).
        ConcurrentMessageLimit = 8;
    }

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<DeliveryAttemptedConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        // The consumer only records the result in the spool's outbox (one idempotent write). While the store is
        // unreachable that write is retried with back-off for as long as it takes, never dropped into an error queue:
        // the result may be the only record that a message was delivered. Any other error is retried a few times.
        endpointConfigurator.UseMessageRetry(retry =>
        {
            retry.Handle<System.Data.Common.DbException>();
            retry.Handle<TimeoutException>();
            retry.Exponential(int.MaxValue, RetryIntervals[0], RetryIntervals[^1], RetryIntervals[0]);
        });
        endpointConfigurator.UseMessageRetry(retry =>
        {
            retry.Ignore<ArgumentException>();
            retry.Ignore<System.Data.Common.DbException>();
            retry.Ignore<TimeoutException>();
            retry.Intervals(RetryIntervals);
        });
    }
}
