using System.Text.Json;
using MailMesh.Contracts;
using MailMesh.Storage;
using MassTransit;

namespace MailMesh.ServiceDefaults;

/// <summary>
/// What the workers of leased spool work share (Delivery's <c>DeliverMessage</c>, Mailbox's <c>DeliverLocalMessage</c>):
/// each spool call bounded by a timeout even if it ignores its token, and one retry policy for the start of an attempt.
/// </summary>
public static class LeasedWork
{
    /// <summary>
    /// An attempt's result as the spool's outbox keeps it (<see cref="ISpool.RecordResultAsync"/>): the JSON of
    /// <paramref name="attempted"/>, and the current span's traceparent, so applying it continues the message's trace.
    /// </summary>
    public static PendingResult ToPendingResult(DeliveryAttempted attempted)
    {
        ArgumentNullException.ThrowIfNull(attempted);
        return new PendingResult
        {
            LeaseId = attempted.LeaseId,
            MessageId = attempted.MessageId,
            RecipientIds = [.. attempted.Results.Select(r => r.RecipientId)],
            Payload = JsonSerializer.Serialize(attempted),
            TraceParent = Telemetry.CurrentTraceParent(),
        };
    }

    /// <summary>
    /// One spool (or store, or bus) call, bounded by <paramref name="timeout"/> even if it ignores its token: a call that
    /// does not answer in time is a <see cref="TimeoutException"/>, a cancelled <paramref name="cancellationToken"/> an
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public static async Task<T> WithTimeoutAsync<T>(Func<CancellationToken, Task<T>> operation, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(operation);
        ArgumentNullException.ThrowIfNull(time);
        using var deadline = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            return await operation(linked.Token).WaitAsync(timeout, time, cancellationToken);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the spool did not answer within {timeout}", ex);
        }
    }
}

/// <summary>
/// A consumer of leased work: a given number of work items at once, and the only thing that can throw (taking
/// the lease, which fails while the spool is unreachable) retried with back-off rather than a burst of reconnects after a
/// database restart. A work item that still fails is re-driven by Queue when its lease expires.
/// </summary>
public abstract class LeasedWorkConsumerDefinition<TConsumer> : ConsumerDefinition<TConsumer>
    where TConsumer : class, IConsumer
{
    protected LeasedWorkConsumerDefinition(int concurrentMessageLimit)
    {
        ConcurrentMessageLimit = concurrentMessageLimit;
    }

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<TConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        ArgumentNullException.ThrowIfNull(endpointConfigurator);
        endpointConfigurator.UseMessageRetry(retry => retry.Exponential(5, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(500)));
    }
}
