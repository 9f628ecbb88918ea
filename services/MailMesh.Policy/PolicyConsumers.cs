using System.Diagnostics;
using MailMesh.Contracts;
using MassTransit;

namespace MailMesh.Policy;

/// <summary>Answers the inline checks Ingress makes, with a <see cref="PolicyDecision"/> each.</summary>
internal abstract class PolicyConsumer<TRequest>(PolicyEngine engine, PolicyMetrics metrics, ILogger logger) : IConsumer<TRequest>
    where TRequest : class
{
    protected abstract string Check { get; }

    public async Task Consume(ConsumeContext<TRequest> context)
    {
        using var activity = PolicyTelemetry.Source.StartActivity("policy." + Check, ActivityKind.Server);
        var client = ClientOf(context.Message);
        activity?.SetTag("client.address", client);

        Verdict verdict;
        try
        {
            verdict = await DecideAsync(engine, context.Message, context.CancellationToken);
        }
        catch (Exception ex) when (!context.CancellationToken.IsCancellationRequested)
        {
            // ARCHITECTURE.md "never accept unchecked": a store failure is a temporary refusal, answered at once
            // rather than left to the requester's timeout.
            logger.StoreUnavailable(ex, Check);
            activity?.AddException(ex);
            verdict = Verdict.Unavailable(Check == "connection" ? 421 : 451);
        }

        activity?.SetTag("mailmesh.policy.decision", verdict.Decision.Accepted ? "accept" : "refuse");
        activity?.SetTag("mailmesh.policy.reason", verdict.Reason);
        metrics.Decided(Check, verdict);
        if (!verdict.Decision.Accepted)
        {
            logger.Refused(Check, client, verdict.Decision.ReplyCode, verdict.Decision.EnhancedCode, verdict.Reason);
        }

        await context.RespondAsync(verdict.Decision);
    }

    protected abstract Task<Verdict> DecideAsync(PolicyEngine engine, TRequest request, CancellationToken cancellationToken);

    protected abstract string ClientOf(TRequest request);
}

internal sealed class CheckConnectionConsumer(PolicyEngine engine, PolicyMetrics metrics, ILogger<CheckConnectionConsumer> logger)
    : PolicyConsumer<CheckConnection>(engine, metrics, logger)
{
    protected override string Check => "connection";

    protected override Task<Verdict> DecideAsync(PolicyEngine engine, CheckConnection request, CancellationToken cancellationToken) =>
        engine.CheckConnectionAsync(request, cancellationToken);

    protected override string ClientOf(CheckConnection request) => request.ClientAddress;
}

internal sealed class CheckRecipientConsumer(PolicyEngine engine, PolicyMetrics metrics, ILogger<CheckRecipientConsumer> logger)
    : PolicyConsumer<CheckRecipient>(engine, metrics, logger)
{
    protected override string Check => "recipient";

    protected override Task<Verdict> DecideAsync(PolicyEngine engine, CheckRecipient request, CancellationToken cancellationToken) =>
        engine.CheckRecipientAsync(request, cancellationToken);

    protected override string ClientOf(CheckRecipient request) => request.ClientAddress;
}

internal sealed class CheckMessageConsumer(PolicyEngine engine, PolicyMetrics metrics, ILogger<CheckMessageConsumer> logger)
    : PolicyConsumer<CheckMessage>(engine, metrics, logger)
{
    protected override string Check => "message";

    protected override Task<Verdict> DecideAsync(PolicyEngine engine, CheckMessage request, CancellationToken cancellationToken) =>
        engine.CheckMessageAsync(request, cancellationToken);

    protected override string ClientOf(CheckMessage request) => request.ClientAddress;
}

/// <summary>
/// Inline checks sit on an SMTP client's critical path: many in parallel, no retries (the requester times out
/// and answers 4xx; a late answer is useless).
/// </summary>
internal sealed class PolicyConsumerDefinition<TConsumer> : ConsumerDefinition<TConsumer>
    where TConsumer : class, IConsumer
{
    public PolicyConsumerDefinition()
    {
        ConcurrentMessageLimit = 64;
    }
}
