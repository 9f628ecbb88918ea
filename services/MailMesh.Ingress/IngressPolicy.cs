using MailMesh.Contracts;
using MailMesh.Smtp;
using MailMesh.Policy;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress;

/// <summary>
/// The inline checks, asked of Policy's rules in this process (<see cref="IPolicyChecks"/>: no bus round trip) and bounded
/// by <see cref="IngressOptions.PolicyTimeout"/>. Any failure -- timeout, store error -- surfaces as an exception or a
/// temporary refusal; the session turns it into a 4xx reply, never an acceptance.
/// </summary>
internal sealed class IngressPolicy(IPolicyChecks checks, IOptions<IngressOptions> options, TimeProvider time)
{
    private readonly TimeSpan _timeout = options.Value.PolicyTimeout;

    public Task<PolicyDecision> CheckAsync(CheckConnection request, CancellationToken cancellationToken) =>
        BoundedAsync(token => checks.CheckConnectionAsync(request, token), cancellationToken);

    public Task<PolicyDecision> CheckAsync(CheckRecipient request, CancellationToken cancellationToken) =>
        BoundedAsync(token => checks.CheckRecipientAsync(request, token), cancellationToken);

    public Task<PolicyDecision> CheckAsync(CheckMessage request, CancellationToken cancellationToken) =>
        BoundedAsync(token => checks.CheckMessageAsync(request, token), cancellationToken);

    /// <summary>The check, given up (TimeoutException) after the policy timeout even if it ignores its token.</summary>
    private async Task<PolicyDecision> BoundedAsync(Func<CancellationToken, Task<PolicyDecision>> check, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        try
        {
            return await check(timeout.Token).WaitAsync(_timeout, time, cancellationToken);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no policy decision within Ingress:PolicyTimeout ({_timeout})");
        }
    }
}

/// <summary>Policy's decisions as SMTP replies.</summary>
internal static class PolicyReplies
{
    /// <summary>Policy's refusal as a reply; an answer that is not a 4xx/5xx refusal is treated as a permanent refusal.</summary>
    public static SmtpReply ToReply(PolicyDecision decision)
    {
        var code = decision.ReplyCode is >= 400 and <= 599 ? decision.ReplyCode : 554;
        var enhanced = decision.EnhancedCode is { } e && SmtpReply.IsValidEnhancedCode(e, code)
            ? e
            : code < 500 ? EnhancedStatusCodes.TransientSystemError : EnhancedStatusCodes.NotAuthorized;
        return new SmtpReply(code, enhanced, string.IsNullOrWhiteSpace(decision.Reason) ? "Refused by policy" : decision.Reason);
    }
}
