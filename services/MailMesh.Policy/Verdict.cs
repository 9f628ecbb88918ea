using MailMesh.Contracts;

namespace MailMesh.Policy;

/// <summary>A policy decision and a short, stable reason token for metrics and logs.</summary>
internal sealed record Verdict(PolicyDecision Decision, string Reason)
{
    public static Verdict Accept { get; } = new(PolicyDecision.Accept, "ok");

    public static Verdict Refuse(int replyCode, string enhancedCode, string text, string reason) =>
        new(new PolicyDecision { Accepted = false, ReplyCode = replyCode, EnhancedCode = enhancedCode, Reason = text }, reason);

    // RFC 5321 §4.2.2 reply codes and RFC 3463 / RFC 5248 enhanced status codes for each refusal.

    /// <summary>421 closes the session (RFC 5321 §3.8); 4.7.0 "other or undefined security status".</summary>
    public static Verdict TooManyConnections(string client) =>
        Refuse(421, "4.7.0", $"too many connections from {client}, try later", "connection_rate");

    public static Verdict BadAddress() =>
        Refuse(501, "5.1.3", "Bad recipient address syntax", "bad_address");

    /// <summary>RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client sends the rest in another transaction.</summary>
    public static Verdict TooManyRecipients() =>
        Refuse(452, "4.5.3", "Too many recipients", "recipient_limit");

    /// <summary>RFC 5321 §3.6.2 and §7.1: no open relay. 5.7.1 "delivery not authorized".</summary>
    public static Verdict RelayDenied() =>
        Refuse(550, "5.7.1", "Relaying denied", "relay_denied");

    public static Verdict RoutingDenied() =>
        Refuse(550, "5.7.1", "Relaying denied: source routing characters in the local part", "routing_denied");

    public static Verdict Suppressed(string address, string reason) =>
        Refuse(550, "5.1.1", $"{address}: recipient suppressed ({reason})", "suppressed");

    /// <summary>A mailbox domain (Policy:MailboxDomains) has no account, alias or catch-all for it: RFC 3463 5.1.1 "bad
    /// destination mailbox address". Refused at RCPT so nothing is accepted that would bounce later (no backscatter).</summary>
    public static Verdict UnknownUser(string address) =>
        Refuse(550, "5.1.1", $"{address}: no such mailbox", "unknown_user");

    /// <summary>RFC 3463 4.2.2 "mailbox full": temporary, the client retries (RFC 5321 §4.5.3.1.10 allows 452 at RCPT).</summary>
    public static Verdict OverQuota(string address) =>
        Refuse(452, "4.2.2", $"{address}: mailbox full", "over_quota");

    /// <summary>RFC 3463 5.2.1 "mailbox disabled, not accepting messages".</summary>
    public static Verdict MailboxDisabled(string address) =>
        Refuse(550, "5.2.1", $"{address}: mailbox disabled, not accepting messages", "mailbox_disabled");

    /// <summary>RFC 1870 §6.3 / RFC 3463 5.3.4 "message too big for system".</summary>
    public static Verdict TooBig(long limit) =>
        Refuse(552, "5.3.4", $"Message size exceeds fixed maximum message size ({limit} bytes)", "size");

    /// <summary>450 4.7.1: a transient refusal the client should retry later.</summary>
    public static Verdict TooManyMessages(string client) =>
        Refuse(450, "4.7.1", $"too many messages from {client}, try later", "message_rate");

    /// <summary>RFC 7208 §8.4 and RFC 7372 §3.2: SPF fail, 550 5.7.23 "SPF validation failed".</summary>
    public static Verdict SpfFailed(string domain, string client) =>
        Refuse(550, "5.7.23", $"SPF validation failed: {domain} does not designate {client} as permitted sender", "spf_fail");

    /// <summary>RFC 7208 §8.7 and RFC 7372 §3.2: SPF permerror, 550 5.7.24 "SPF validation error".</summary>
    public static Verdict SpfPermError(string domain) =>
        Refuse(550, "5.7.24", $"SPF validation error: the SPF record of {domain} is invalid", "spf_permerror");

    /// <summary>RFC 7208 §8.6 and RFC 7372 §3.2: SPF temperror, 451 4.7.24; the client retries.</summary>
    public static Verdict SpfTempError(string domain) =>
        Refuse(451, "4.7.24", $"SPF validation error: DNS lookup for {domain} failed, try again later", "spf_temperror");

    /// <summary>The store did not answer: never accept unchecked (ARCHITECTURE.md), ask the client to retry.</summary>
    public static Verdict Unavailable(int replyCode) =>
        Refuse(replyCode, "4.3.0", "Policy temporarily unavailable, try again later", "store_unavailable");
}
