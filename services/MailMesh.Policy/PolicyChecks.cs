using System.Diagnostics;
using MailMesh.Contracts;

namespace MailMesh.Policy;

/// <summary>
/// The inline checks an SMTP or HTTP submission needs before it may be accepted: at connect, at each RCPT and at the end
/// of DATA. Ingress asks them of <see cref="PolicyChecks"/> in its own process; tests give Ingress a scripted one.
/// </summary>
public interface IPolicyChecks
{
    Task<PolicyDecision> CheckConnectionAsync(CheckConnection request, CancellationToken cancellationToken);

    Task<PolicyDecision> CheckRecipientAsync(CheckRecipient request, CancellationToken cancellationToken);

    Task<PolicyDecision> CheckMessageAsync(CheckMessage request, CancellationToken cancellationToken);
}

/// <summary>
/// Policy's rules (<see cref="PolicyEngine"/>) evaluated where the question arises: in the Ingress process, against
/// Policy's own tables (suppressions, rate counters) in the shared policy store, so a decision costs no bus round trip
/// and a limit still holds across every Ingress replica (issue 8: at most three bus messages per mail). The Policy service
/// owns the rules, their configuration (<c>Policy:*</c>), the tables and their admin API.
/// </summary>
/// <remarks>
/// Each decision is a span (<c>policy.connection</c>, <c>policy.recipient</c>, <c>policy.message</c>) and a
/// <c>mailmesh.policy.decisions</c> count. A store that fails is a temporary refusal, never an acceptance
/// (ARCHITECTURE.md "never accept unchecked"); the caller bounds the wait (<c>Ingress:PolicyTimeout</c>).
/// </remarks>
internal sealed class PolicyChecks(PolicyEngine engine, PolicyMetrics metrics, ILogger<PolicyChecks> logger) : IPolicyChecks
{
    public Task<PolicyDecision> CheckConnectionAsync(CheckConnection request, CancellationToken cancellationToken) =>
        DecideAsync("connection", request.ClientAddress, engine.CheckConnectionAsync(request, cancellationToken), cancellationToken);

    public Task<PolicyDecision> CheckRecipientAsync(CheckRecipient request, CancellationToken cancellationToken) =>
        DecideAsync("recipient", request.ClientAddress, engine.CheckRecipientAsync(request, cancellationToken), cancellationToken);

    public Task<PolicyDecision> CheckMessageAsync(CheckMessage request, CancellationToken cancellationToken) =>
        DecideAsync("message", request.ClientAddress, engine.CheckMessageAsync(request, cancellationToken), cancellationToken);

    private async Task<PolicyDecision> DecideAsync(string check, string client, Task<Verdict> decision, CancellationToken cancellationToken)
    {
        using var activity = PolicyTelemetry.Source.StartActivity("policy." + check, ActivityKind.Internal);
        activity?.SetTag("client.address", client);

        Verdict verdict;
        try
        {
            verdict = await decision;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // A store failure is a temporary refusal, answered at once rather than left to the caller's timeout.
            logger.StoreUnavailable(ex, check);
            activity?.AddException(ex);
            verdict = Verdict.Unavailable(check == "connection" ? 421 : 451);
        }

        activity?.SetTag("mailmesh.policy.decision", verdict.Decision.Accepted ? "accept" : "refuse");
        activity?.SetTag("mailmesh.policy.reason", verdict.Reason);
        metrics.Decided(check, verdict);
        if (!verdict.Decision.Accepted)
        {
            logger.Refused(check, client, verdict.Decision.ReplyCode, verdict.Decision.EnhancedCode, verdict.Reason);
        }

        return verdict.Decision;
    }
}
