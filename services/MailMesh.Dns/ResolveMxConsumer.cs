using MailMesh.Contracts;
using MassTransit;

namespace MailMesh.Dns;

/// <summary>Answers <see cref="ResolveMx"/> requests with <see cref="MxResolved"/>.</summary>
internal sealed class ResolveMxConsumer(MxResolver resolver) : IConsumer<ResolveMx>
{
    public async Task Consume(ConsumeContext<ResolveMx> context)
    {
        var answer = await resolver.ResolveAsync(context.Message.Domain, context.CancellationToken);
        await context.RespondAsync(answer);
    }
}

/// <summary>
/// Lookups are I/O-bound and coalesced per domain, so many run at once. No retry: every failure is already an answer
/// (TemporaryFailure), and a requester that timed out has moved on.
/// </summary>
internal sealed class ResolveMxConsumerDefinition : ConsumerDefinition<ResolveMxConsumer>
{
    public ResolveMxConsumerDefinition()
    {
        ConcurrentMessageLimit = 256;
    }

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<ResolveMxConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        // Answers are only useful while the requester waits (Delivery:ResolveTimeout).
        endpointConfigurator.PrefetchCount = 256;
    }
}
