using MailMesh.Contracts;
using MailMesh.Smtp;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress;

/// <summary>
/// The inline checks Ingress asks Policy over the bus (request/response). Any failure -- timeout, fault, no
/// responder -- surfaces as an exception; the session turns it into a 4xx reply, never an acceptance.
/// </summary>
internal sealed class IngressPolicy(
    IRequestClient<CheckConnection> connection,
    IRequestClient<CheckRecipient> recipient,
    IRequestClient<CheckMessage> message,
    IOptions<IngressOptions> options)
{
    private readonly RequestTimeout _timeout = RequestTimeout.After(ms: (int)Math.Ceiling(options.Value.PolicyTimeout.TotalMilliseconds));

    public async Task<PolicyDecision> CheckAsync(CheckConnection request, CancellationToken cancellationToken) =>
        (await connection.GetResponse<PolicyDecision>(request, cancellationToken, _timeout)).Message;

    public async Task<PolicyDecision> CheckAsync(CheckRecipient request, CancellationToken cancellationToken) =>
        (await recipient.GetResponse<PolicyDecision>(request, cancellationToken, _timeout)).Message;

    public async Task<PolicyDecision> CheckAsync(CheckMessage request, CancellationToken cancellationToken) =>
        (await message.GetResponse<PolicyDecision>(request, cancellationToken, _timeout)).Message;
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
