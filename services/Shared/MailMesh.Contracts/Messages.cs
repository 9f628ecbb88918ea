namespace MailMesh.Contracts;

// Events are in the past tense, commands in the imperative. Bodies never travel over the bus:
// every message refers to the spool by id (ARCHITECTURE.md, "The durability contract").

/// <summary>
/// One message committed to the spool. Ingress announces them in batches (<see cref="MessagesReceived"/>); alone on the
/// bus it comes from Queue (a new DSN) or from an Ingress older than batches.
/// </summary>
public sealed record MessageReceived
{
    public required Guid MessageId { get; init; }
    public required string Sender { get; init; }
    public required int RecipientCount { get; init; }
    public required long Size { get; init; }
    public required DateTimeOffset ReceivedAt { get; init; }
}

/// <summary>
/// Published by Ingress: the messages it committed to the spool since its previous announcement, in one bus message
/// (issue 8: notifications in batches). While one announcement is on its way to the broker, the messages committed
/// meanwhile wait for the next, so under load many messages share one; a quiet server announces each message alone and
/// at once. Like <see cref="MessageReceived"/> it is a hint: a lost one costs Queue one poll interval.
/// </summary>
public sealed record MessagesReceived
{
    public required IReadOnlyList<MessageReceived> Messages { get; init; }
}

/// <summary>Sent by Queue to Delivery: deliver these recipients of one message, all at one domain.</summary>
public sealed record DeliverMessage
{
    public required Guid MessageId { get; init; }
    public required string Domain { get; init; }
    public required IReadOnlyList<DeliveryRecipient> Recipients { get; init; }

    /// <summary>The lease under which Queue handed out the recipients; results are applied only under it.</summary>
    public required Guid LeaseId { get; init; }
    public required DateTimeOffset LeaseExpiresAt { get; init; }

    /// <summary>
    /// How long Queue leases work (Queue:LeaseDuration): Delivery renews the lease by this much while it works. Null
    /// from an older Queue; Delivery then renews by the time the lease had left when it took it.
    /// </summary>
    public TimeSpan? LeaseDuration { get; init; }

    /// <summary>
    /// The source-IP pool the message was submitted for (stored with it; docs/delivery.md "IP pools"), or null: Delivery
    /// chooses by sender domain or its default pool. Null from an older Queue; Delivery then reads the stored one.
    /// </summary>
    public string? Pool { get; init; }

    /// <summary>
    /// The W3C traceparent of Queue's dispatch span for this work item, in the message's own trace. Delivery parents its
    /// attempt on it when the item came in a <see cref="DeliverMessages"/> batch (whose bus headers carry the batch's
    /// trace, not the message's); alone on the bus the headers carry the same context. Null from an older Queue.
    /// </summary>
    public string? TraceParent { get; init; }
}

/// <summary>
/// Sent by Queue to Delivery: several <see cref="DeliverMessage"/> work items of one claim in one bus message (issue 8:
/// the broker carried one message per job, the largest part of its cost per mail). Each item keeps its own lease and is
/// delivered and answered exactly as if it had come alone; a claim that yields one item sends it alone. The batch is
/// bounded (<c>Queue:DispatchBatchSize</c>) so that the work of one claim still spreads over several Delivery replicas.
/// </summary>
public sealed record DeliverMessages
{
    public required IReadOnlyList<DeliverMessage> Jobs { get; init; }
}

/// <summary>
/// Sent by Queue to Mailbox (issue 9): store these recipients of one message, all at one of <c>Policy:MailboxDomains</c>,
/// in local mailboxes. The same work item as <see cref="DeliverMessage"/>, under the same lease, answered the same way
/// (a <see cref="DeliveryAttempted"/> in the spool's result outbox); only the worker differs.
/// </summary>
public sealed record DeliverLocalMessage
{
    public required DeliverMessage Work { get; init; }
}

public sealed record DeliveryRecipient
{
    public required long RecipientId { get; init; }
    public required string Address { get; init; }
    public required int Attempt { get; init; }

    /// <summary>RFC 3461 NOTIFY parameter as received (e.g. "SUCCESS,FAILURE"), or null.</summary>
    public string? Notify { get; init; }

    /// <summary>RFC 3461 ORCPT parameter as received (e.g. "rfc822;user@example.com"), or null.</summary>
    public string? OriginalRecipient { get; init; }
}

/// <summary>
/// The outcome of one attempt: one result per recipient of the <see cref="DeliverMessage"/>. Delivery records it in the
/// spool's result outbox; it travels on the bus only when the spool could not take it in time (Queue then records it).
/// </summary>
public sealed record DeliveryAttempted
{
    public required Guid MessageId { get; init; }
    public required string Domain { get; init; }
    public required Guid LeaseId { get; init; }
    public required IReadOnlyList<RecipientResult> Results { get; init; }
    public string? RemoteHost { get; init; }
    public string? RemoteAddress { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public required DateTimeOffset CompletedAt { get; init; }

    /// <summary>
    /// The TLS of the connection whose replies the results are (RFC 3207); null when no connection answered (DNS, connection
    /// or handshake failures, shaping holds) and from a Delivery older than this field.
    /// </summary>
    public AttemptTls? Tls { get; init; }
}

/// <summary>What protected the SMTP session of an attempt (shown with the attempt in the admin API).</summary>
public sealed record AttemptTls
{
    /// <summary>The TLS protocol ("TLSv1.3", "TLSv1.2"), or "none" when the session stayed in clear text.</summary>
    public required string Protocol { get; init; }

    /// <summary>The negotiated cipher suite (IANA name, e.g. TLS_AES_256_GCM_SHA384); null in clear text.</summary>
    public string? Cipher { get; init; }

    /// <summary>
    /// How the server certificate was verified: "dane" (TLSA records, RFC 7672), "mta-sts" (an enforced policy, RFC 8461),
    /// "webpki" (a chain to a trusted root matching the MX name), or "none" (encrypted without verification, or clear text).
    /// </summary>
    public required string Verification { get; init; }
}

public enum DeliveryOutcome
{
    Delivered,
    Deferred,
    Bounced,
}

public sealed record RecipientResult
{
    public required long RecipientId { get; init; }
    public required string Address { get; init; }
    public required DeliveryOutcome Outcome { get; init; }

    /// <summary>The SMTP reply code (or a synthesised one for local failures: 451 for DNS timeouts, 550 for null MX).</summary>
    public required int ReplyCode { get; init; }

    /// <summary>RFC 3463 enhanced status code, e.g. "5.1.1".</summary>
    public required string EnhancedCode { get; init; }
    public required string ReplyText { get; init; }

    /// <summary>
    /// Whose reply this is: the destination server's answer to MAIL, RCPT or the end of data, or <see cref="ReplyStage.Local"/>
    /// when MailMesh made it up (DNS answer, connection or TLS failure, a refusal before sending). Absent means Local.
    /// </summary>
    public ReplyStage Stage { get; init; }

    /// <summary>
    /// What a result that is not a delivery was about (Delivery's bounce classifier, <c>docs/delivery.md</c>); null for a
    /// delivery, and from a Delivery older than the classifier.
    /// </summary>
    public BounceClass? Class { get; init; }

    /// <summary>
    /// True when Delivery deferred the recipient without trying it (e.g. every address of its IP pool reached its warm-up
    /// cap today): Queue retries it without counting the attempt or advancing its back-off.
    /// </summary>
    public bool NotAttempted { get; init; }

    /// <summary>
    /// Set when Delivery did not try the destination at all (traffic shaping: the site is suspended, or its connection or
    /// message budget is spent): Queue defers the recipient until this time without counting an attempt
    /// (docs/delivery.md, "Traffic shaping"). Null for every result of a real attempt.
    /// </summary>
    public DateTimeOffset? NotAttemptedUntil { get; init; }
}

/// <summary>Which command a <see cref="RecipientResult"/>'s reply answered (Local: no remote reply).</summary>
public enum ReplyStage
{
    Local,
    Mail,
    Rcpt,
    Data,
}

/// <summary>Request to Dns: the mail exchangers of a domain, in the order to try them.</summary>
public sealed record ResolveMx
{
    public required string Domain { get; init; }
}

public enum MxStatus
{
    /// <summary>Hosts lists the exchangers in preference order (ties randomised), each with its addresses.</summary>
    Ok,

    /// <summary>RFC 7505 null MX: the domain accepts no mail. Permanent.</summary>
    NullMx,

    /// <summary>NXDOMAIN, or no MX and no address records. Permanent.</summary>
    NoSuchDomain,

    /// <summary>SERVFAIL, timeout, or exchangers whose addresses could not be resolved yet. Try again later.</summary>
    TemporaryFailure,
}

public sealed record MxResolved
{
    public required string Domain { get; init; }
    public required MxStatus Status { get; init; }
    public required IReadOnlyList<MxHost> Hosts { get; init; }
    public string? Error { get; init; }
    public bool FromCache { get; init; }

    /// <summary>
    /// How much longer this answer may be used (what is left of the smallest DNS TTL behind it, as the Dns service caches
    /// it); zero means use it once. Delivery keeps answers this long so that only a miss or an expiry crosses the bus.
    /// </summary>
    public TimeSpan TimeToLive { get; init; }
}

public sealed record MxHost
{
    public required string Name { get; init; }
    public required int Preference { get; init; }

    /// <summary>IP addresses (IPv4 and IPv6) as text, in the order to try them.</summary>
    public required IReadOnlyList<string> Addresses { get; init; }
}

/// <summary>Inline policy check asked by Ingress at RCPT time, before the recipient is accepted.</summary>
public sealed record CheckRecipient
{
    public required string ClientAddress { get; init; }
    public required string Sender { get; init; }
    public required string Recipient { get; init; }
    public string? AuthenticatedUser { get; init; }

    /// <summary>The client's HELO/EHLO name, if any: the SPF identity for the null sender (RFC 7208 §2.3, §2.4).</summary>
    public string? Helo { get; init; }

    /// <summary>Recipients already accepted in this transaction (for per-message limits).</summary>
    public int AcceptedRecipients { get; init; }
}

/// <summary>Inline policy check asked by Ingress at end of DATA, before the message is committed.</summary>
public sealed record CheckMessage
{
    public required string ClientAddress { get; init; }
    public required string Sender { get; init; }
    public required IReadOnlyList<string> Recipients { get; init; }
    public required long Size { get; init; }
    public string? AuthenticatedUser { get; init; }
}

/// <summary>Inline policy check asked by Ingress when a client connects (connection rate limits).</summary>
public sealed record CheckConnection
{
    public required string ClientAddress { get; init; }
}

/// <summary>Policy's answer to any Check* request. A refusal carries the SMTP reply to give.</summary>
public sealed record PolicyDecision
{
    public required bool Accepted { get; init; }
    public required int ReplyCode { get; init; }
    public required string EnhancedCode { get; init; }
    public required string Reason { get; init; }

    /// <summary>An accepted recipient's trace header field to prepend at acceptance (e.g. Received-SPF, RFC 7208 §9.1),
    /// ending in CRLF; null when there is none.</summary>
    public string? TraceHeader { get; init; }

    public static PolicyDecision Accept { get; } = new() { Accepted = true, ReplyCode = 250, EnhancedCode = "2.0.0", Reason = "OK" };
}

public enum MessageEventType
{
    Received,
    Delivered,
    Deferred,
    Bounced,
    Expired,
    Suppressed,
    DsnQueued,

    /// <summary>The recipient complained about the message (an RFC 5965 feedback report came back to its return path).</summary>
    Complained,
}

/// <summary>
/// Every change of a recipient's state: for webhooks, tracking and tests. Queue publishes them in batches
/// (<see cref="MessageEvents"/>); a single <see cref="MessageEvent"/> on the bus comes from a Queue older than that.
/// </summary>
public sealed record MessageEvent
{
    /// <summary>
    /// The event's own id, the same on every retry (webhooks send it as <c>X-MailMesh-Event-Id</c> for de-duplication);
    /// null from a Queue older than batches, whose events are told apart by their bus message's id.
    /// </summary>
    public Guid? EventId { get; init; }

    public required Guid MessageId { get; init; }
    public required MessageEventType Type { get; init; }
    public string? Recipient { get; init; }
    public int? ReplyCode { get; init; }
    public string? EnhancedCode { get; init; }
    public string? Text { get; init; }
    public string? RemoteHost { get; init; }
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The bounce class of the reply behind a deferral, bounce or expiry (<see cref="BounceClass"/>); null otherwise.</summary>
    public BounceClass? Class { get; init; }
}

/// <summary>
/// The <see cref="MessageEvent"/>s of one step of Queue, in the order they happened, in one bus message (issue 8:
/// events in batches): the results Queue applies in one transaction publish their events together, so an event costs
/// the broker a share of one message instead of one each.
/// </summary>
public sealed record MessageEvents
{
    public required IReadOnlyList<MessageEvent> Events { get; init; }
}

/// <summary>
/// Queue's own: one event that the webhook consumer still has to POST to some of its endpoints (<see cref="Targets"/>,
/// "config:" and the URL of a configured endpoint, "stored:" and the id of one made through the admin API), after the first
/// try of its <see cref="MessageEvents"/> batch failed for them. Retried on its own, so a failing endpoint costs the
/// others nothing and the batch is not sent again.
/// </summary>
public sealed record WebhookRetry
{
    public required MessageEvent Event { get; init; }
    public required IReadOnlyList<string> Targets { get; init; }
}

/// <summary>
/// What a delivery failure was about, after KumoMTA's bounce classes (plus <see cref="Throttled"/>, <see cref="TooLarge"/>
/// and <see cref="TlsFailure"/>). Delivery classifies every reply that is not a delivery by the rules in its
/// <c>bounce-rules.json</c> and the operator's files (<c>docs/delivery.md</c>); Queue retries, suppresses and reports by it.
/// The numbers are part of the stored result format: new classes are added at the end.
/// </summary>
public enum BounceClass
{
    /// <summary>No rule matched.</summary>
    Uncategorized = 0,

    /// <summary>The recipient's mailbox does not exist (RFC 3463 X.1.1, "user unknown").</summary>
    InvalidRecipient = 1,

    /// <summary>The recipient's domain does not exist or accepts no mail (X.1.2, null MX X.1.10).</summary>
    BadDomain = 2,

    /// <summary>The mailbox exists but is disabled or inactive (X.2.1).</summary>
    InactiveMailbox = 3,

    /// <summary>The sender's address was refused (X.1.7, X.1.8).</summary>
    InvalidSender = 4,

    /// <summary>The mailbox is full (X.2.2).</summary>
    QuotaIssues = 5,

    /// <summary>The message is larger than the destination takes (X.3.4, X.2.3).</summary>
    TooLarge = 6,

    /// <summary>Refused as coming from a known spam source: the sending IP or domain is on a block list or has a poor reputation.</summary>
    SpamBlock = 7,

    /// <summary>The message itself was judged spam.</summary>
    SpamContent = 8,

    /// <summary>The message carries a virus or malware.</summary>
    VirusRelated = 9,

    /// <summary>An attachment type the destination refuses.</summary>
    ProhibitedAttachment = 10,

    /// <summary>Refused for its content otherwise (X.6.x).</summary>
    ContentRelated = 11,

    /// <summary>Refused by the destination's local policy (X.7.x without a more specific reason).</summary>
    PolicyRelated = 12,

    /// <summary>SPF, DKIM or DMARC failed (RFC 7372 X.7.20–X.7.26).</summary>
    AuthenticationFailed = 13,

    /// <summary>The destination does not relay for this recipient.</summary>
    RelayDenied = 14,

    /// <summary>Rate limited: too many connections, messages or recipients for now.</summary>
    Throttled = 15,

    /// <summary>A temporary failure without a more specific reason (greylisting, 4.x.x).</summary>
    TransientFailure = 16,

    /// <summary>MailMesh's DNS lookup of the destination failed (X.4.3).</summary>
    DnsFailure = 17,

    /// <summary>No route to the destination, or a mail loop (X.4.4, X.4.6).</summary>
    RoutingErrors = 18,

    /// <summary>The connection to the destination broke (X.4.2).</summary>
    BadConnection = 19,

    /// <summary>The destination did not answer (connection refused or timed out, X.4.1).</summary>
    NoAnswerFromHost = 20,

    /// <summary>The sender's set-up is refused: reverse DNS (PTR), HELO name.</summary>
    BadConfiguration = 21,

    /// <summary>The SMTP dialogue failed: syntax, unsupported extension (X.5.x, SMTPUTF8, BINARYMIME).</summary>
    ProtocolErrors = 22,

    /// <summary>Too many recipients in one transaction (X.5.3).</summary>
    TooManyRecipients = 23,

    /// <summary>STARTTLS was missing or failed where TLS is required (X.7.4, X.7.5, X.7.10, REQUIRETLS 5.7.30).</summary>
    TlsFailure = 24,

    /// <summary>The recipient was not delivered within Queue:MaxAge (or its class's MaxAge).</summary>
    MessageExpired = 25,
}
