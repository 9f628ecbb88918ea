namespace MailMesh.Storage;

// Timestamps: both stores keep millisecond precision (SQLite stores unix milliseconds), so every DateTimeOffset
// handed to a store is truncated to the millisecond and read back in UTC.

public enum RecipientState
{
    Queued = 0,
    InFlight = 1,
    Deferred = 2,
    Delivered = 3,
    Bounced = 4,
    Expired = 5,
    Suppressed = 6,

    /// <summary>Held by an administrator (admin API "hold"): never claimed by the scheduler until released.</summary>
    Held = 7,
}

public static class RecipientStates
{
    public static bool IsFinal(this RecipientState state) =>
        state is RecipientState.Delivered or RecipientState.Bounced or RecipientState.Expired or RecipientState.Suppressed;
}

/// <summary>How the message reached MailMesh.</summary>
public enum MessageOrigin
{
    Smtp = 0,
    Http = 1,
    Dsn = 2,
}

/// <summary>RFC 6152 / RFC 3030 BODY parameter.</summary>
public enum BodyType
{
    SevenBit = 0,
    EightBitMime = 1,
    BinaryMime = 2,
}

public sealed record NewRecipient
{
    public required string Address { get; init; }

    /// <summary>RFC 3461 NOTIFY as received ("NEVER", or a comma list of SUCCESS, FAILURE, DELAY), or null.</summary>
    public string? Notify { get; init; }

    /// <summary>RFC 3461 ORCPT as received ("rfc822;addr"), or null.</summary>
    public string? OriginalRecipient { get; init; }

    /// <summary>Initial state: Queued normally; Suppressed when policy accepted the message but suppressed this one.</summary>
    public RecipientState State { get; init; } = RecipientState.Queued;
}

public sealed record NewMessage
{
    public required Guid Id { get; init; }

    /// <summary>The reverse path without angle brackets; empty for the null sender (&lt;&gt;).</summary>
    public required string Sender { get; init; }
    public required IReadOnlyList<NewRecipient> Recipients { get; init; }

    /// <summary>The message exactly as it will be sent: headers (including our Received:) and body, CRLF line ends, not dot-stuffed.
    /// Empty when <see cref="ContentSource"/> carries the message instead.</summary>
    public ReadOnlyMemory<byte> Content { get; init; }

    /// <summary>The message as a stream, for a body too large to hold in memory (Ingress spilled it to a file); when
    /// set, it replaces <see cref="Content"/>.</summary>
    public MessageContentSource? ContentSource { get; init; }

    /// <summary>The stored message's length in bytes, whichever way it is carried.</summary>
    public long ContentLength => ContentSource?.Length ?? Content.Length;
    public required DateTimeOffset ReceivedAt { get; init; }
    public MessageOrigin Origin { get; init; } = MessageOrigin.Smtp;
    public string? ClientAddress { get; init; }
    public string? ClientHelo { get; init; }
    public string? AuthenticatedUser { get; init; }
    public BodyType BodyType { get; init; } = BodyType.SevenBit;
    public bool SmtpUtf8 { get; init; }
    public bool RequireTls { get; init; }

    /// <summary>RFC 3461 ENVID and RET ("FULL" or "HDRS"), or null.</summary>
    public string? EnvelopeId { get; init; }
    public string? Ret { get; init; }

    /// <summary>W3C traceparent of the session that accepted the message, so later attempts link back to it.</summary>
    public string? TraceParent { get; init; }

    /// <summary>Earliest first attempt; null means now.</summary>
    public DateTimeOffset? NotBefore { get; init; }

    /// <summary>
    /// The source-IP pool chosen at submission (Delivery:Pools, docs/delivery.md "IP pools"): the HTTP API's
    /// <c>pool</c>, the API key's pool, or an authenticated client's X-MailMesh-Pool header; null lets Delivery choose.
    /// </summary>
    public string? Pool { get; init; }
}

/// <summary>
/// A message body read from a stream: <see cref="Open"/> returns a fresh stream positioned at the first byte that
/// yields exactly <see cref="Length"/> bytes. A store may open it more than once (a retried transaction); it disposes
/// every stream it opens, and never keeps one past <see cref="ISpool.StoreAsync"/>.
/// </summary>
public sealed record MessageContentSource(long Length, Func<Stream> Open)
{
    /// <summary>
    /// For content in a file: the same octets as one memory map, which the store prefers where its driver would
    /// otherwise buffer a stream whole (Npgsql 10 copies a bytea <see cref="Stream"/> parameter into a growing
    /// MemoryStream: about 128 MiB of heap for a 35 MB message; a <see cref="ReadOnlyMemory{T}"/> parameter is written
    /// in pieces). The store disposes every map it makes before <see cref="ISpool.StoreAsync"/> returns.
    /// </summary>
    public Func<Content.MappedContent>? Map { get; init; }

    /// <summary>
    /// With <see cref="Map"/>: the octets that come before the mapped ones (a header section written in front of a
    /// spilled body), small and in memory; the content is this followed by the map.
    /// </summary>
    public ReadOnlyMemory<byte> MappedPrefix { get; init; }
}

public sealed record StoredMessage
{
    /// <summary>
    /// <see cref="ISpool.StartAttemptAsync"/> returns content up to this many octets inline; a larger message's content
    /// stays in the store until <see cref="ISpool.CopyContentAsync"/> streams it (most transactional mail is far
    /// smaller; this bounds what each concurrent attempt holds on the heap).
    /// </summary>
    public const int InlineContentLimit = 256 * 1024;

    public required Guid Id { get; init; }
    public required string Sender { get; init; }

    /// <summary>The content; empty when <see cref="DetachedContentLength"/> is set.</summary>
    public required ReadOnlyMemory<byte> Content { get; init; }

    /// <summary>
    /// Set when the content was left in the store (<see cref="ISpool.StartAttemptAsync"/>, over
    /// <see cref="InlineContentLimit"/>): its length in octets, to be read with <see cref="ISpool.CopyContentAsync"/>.
    /// </summary>
    public long? DetachedContentLength { get; init; }

    /// <summary>The content's length in octets, inline or detached.</summary>
    public long ContentLength => DetachedContentLength ?? Content.Length;

    /// <summary>
    /// Set when <see cref="Content"/> is a rented buffer (<see cref="ISpool.StartAttemptAsync"/> reads inline content
    /// into one): the content is valid until this is disposed, which <see cref="Content.AttemptContent"/> does when the
    /// attempt ends. Null when the content is an ordinary array.
    /// </summary>
    public IDisposable? ContentLease { get; init; }
    public required DateTimeOffset ReceivedAt { get; init; }
    public required MessageOrigin Origin { get; init; }
    public string? ClientAddress { get; init; }
    public string? ClientHelo { get; init; }
    public string? AuthenticatedUser { get; init; }
    public required BodyType BodyType { get; init; }
    public required bool SmtpUtf8 { get; init; }
    public required bool RequireTls { get; init; }
    public string? EnvelopeId { get; init; }
    public string? Ret { get; init; }
    public string? TraceParent { get; init; }

    /// <summary>The source-IP pool chosen at submission (<see cref="NewMessage.Pool"/>), or null.</summary>
    public string? Pool { get; init; }
}

/// <summary>Recipients of one message at one domain, claimed together under one lease.</summary>
public sealed record DeliveryJob
{
    public required Guid MessageId { get; init; }
    public required string Domain { get; init; }
    public required Guid LeaseId { get; init; }
    public required DateTimeOffset LeaseExpiresAt { get; init; }
    public required DateTimeOffset ReceivedAt { get; init; }
    public string? TraceParent { get; init; }
    public required IReadOnlyList<ClaimedRecipient> Recipients { get; init; }

    /// <summary>The message's source-IP pool (<see cref="NewMessage.Pool"/>), or null.</summary>
    public string? Pool { get; init; }
}

public sealed record ClaimedRecipient
{
    public required long RecipientId { get; init; }
    public required string Address { get; init; }

    /// <summary>1 for the first attempt.</summary>
    public required int Attempt { get; init; }
    public string? Notify { get; init; }
    public string? OriginalRecipient { get; init; }
}

/// <summary>A recipient's new state after an attempt (decided by Queue), with the reply that caused it.</summary>
public sealed record RecipientUpdate
{
    public required long RecipientId { get; init; }
    public required RecipientState State { get; init; }

    /// <summary>When the next attempt is due (Deferred only).</summary>
    public DateTimeOffset? NextAttemptAt { get; init; }
    public required DateTimeOffset AttemptedAt { get; init; }
    public int? ReplyCode { get; init; }
    public string? EnhancedCode { get; init; }
    public string? ReplyText { get; init; }
    public string? RemoteHost { get; init; }

    /// <summary>The bounce class of the reply (the name of a <c>MailMesh.Contracts.BounceClass</c>); null for a delivery.</summary>
    public string? BounceClass { get; init; }

    /// <summary>
    /// The recipient was not tried (Delivery deferred it before any connection: its IP pool's warm-up caps were reached,
    /// or traffic shaping held it): the attempt counted when it was claimed is taken back, so its back-off does not advance.
    /// </summary>
    public bool NotAttempted { get; init; }

    /// <summary>
    /// The TLS protocol of the attempt's connection ("TLSv1.3", "TLSv1.2", or "none" for clear text); null when no
    /// connection carried the attempt (or it was recorded before schema 21).
    /// </summary>
    public string? TlsProtocol { get; init; }

    /// <summary>The negotiated cipher suite (IANA name), or null.</summary>
    public string? TlsCipher { get; init; }

    /// <summary>How the server certificate was verified: "dane", "mta-sts", "webpki", or "none" (not verified); or null.</summary>
    public string? TlsVerification { get; init; }
}

/// <summary>The outcome of one attempt, to apply with others in one transaction (<see cref="ISpool.CompleteAttemptsAsync"/>).</summary>
public sealed record AttemptCompletion
{
    public required Guid MessageId { get; init; }
    public required Guid LeaseId { get; init; }
    public required IReadOnlyList<RecipientUpdate> Updates { get; init; }
}

public sealed record RecipientStatus
{
    public required long RecipientId { get; init; }
    public required string Address { get; init; }
    public required string Domain { get; init; }
    public required RecipientState State { get; init; }
    public required int Attempts { get; init; }
    public DateTimeOffset? NextAttemptAt { get; init; }
    public int? LastReplyCode { get; init; }
    public string? LastEnhancedCode { get; init; }
    public string? LastReplyText { get; init; }
    public string? LastRemoteHost { get; init; }
    public DateTimeOffset? UpdatedAt { get; init; }
    public string? Notify { get; init; }
    public string? OriginalRecipient { get; init; }

    /// <summary>Every completed attempt for this recipient, oldest first.</summary>
    public IReadOnlyList<AttemptRecord> History { get; init; } = [];

    /// <summary>The bounce class of the last reply (the name of a <c>MailMesh.Contracts.BounceClass</c>), or null.</summary>
    public string? LastBounceClass { get; init; }
}

/// <summary>One completed delivery attempt of one recipient: the state it led to and the reply that caused it.</summary>
public sealed record AttemptRecord
{
    public required DateTimeOffset AttemptedAt { get; init; }

    /// <summary>The state the recipient moved to after this attempt.</summary>
    public required RecipientState State { get; init; }
    public int? ReplyCode { get; init; }
    public string? EnhancedCode { get; init; }
    public string? ReplyText { get; init; }
    public string? RemoteHost { get; init; }

    /// <summary>The bounce class of the reply (the name of a <c>MailMesh.Contracts.BounceClass</c>), or null.</summary>
    public string? BounceClass { get; init; }

    /// <summary>
    /// The TLS protocol of the attempt's connection ("TLSv1.3", "TLSv1.2", or "none" for clear text); null when no
    /// connection carried the attempt (or it was recorded before schema 21).
    /// </summary>
    public string? TlsProtocol { get; init; }

    /// <summary>The negotiated cipher suite (IANA name), or null.</summary>
    public string? TlsCipher { get; init; }

    /// <summary>How the server certificate was verified: "dane", "mta-sts", "webpki", or "none" (not verified); or null.</summary>
    public string? TlsVerification { get; init; }
}

public sealed record MessageStatus
{
    public required Guid Id { get; init; }
    public required string Sender { get; init; }
    public required DateTimeOffset ReceivedAt { get; init; }
    public required long Size { get; init; }
    public required MessageOrigin Origin { get; init; }
    public required IReadOnlyList<RecipientStatus> Recipients { get; init; }

    /// <summary>When the last recipient reached a final state; null while any recipient is still pending.</summary>
    public DateTimeOffset? CompletedAt { get; init; }
}

public sealed record Suppression
{
    public required string Address { get; init; }
    public required string Reason { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Who added it: one of <see cref="SuppressionSources"/>.</summary>
    public string Source { get; init; } = SuppressionSources.Api;

    /// <summary>When it stops suppressing; null means never. An expired suppression is kept (and listed) but does not suppress.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>Whether the address is suppressed at <paramref name="now"/>.</summary>
    public bool IsActiveAt(DateTimeOffset now) => ExpiresAt is null || ExpiresAt > now;
}

/// <summary>Where a suppression came from.</summary>
public static class SuppressionSources
{
    /// <summary>A destination server refused the recipient permanently (RCPT, RFC 3463 X.1.x recipient status).</summary>
    public const string Bounce = "bounce";

    /// <summary>An administrator, over the admin API.</summary>
    public const string Api = "api";

    /// <summary>The recipient complained (feedback loop, RFC 5965).</summary>
    public const string Complaint = "complaint";

    public static IReadOnlyList<string> All { get; } = [Bounce, Api, Complaint];
}

/// <summary>
/// One claim round (<see cref="ISpool.ClaimDueAsync(ClaimRequest, CancellationToken)"/>): how much to claim and the
/// in-flight window it must stay inside.
/// </summary>
public sealed record ClaimRequest
{
    public required DateTimeOffset Now { get; init; }

    /// <summary>Most recipients claimed in this round.</summary>
    public required int MaxRecipients { get; init; }
    public required TimeSpan LeaseDuration { get; init; }

    /// <summary>
    /// Most jobs (leases) under live, unfinished leases across every claimer, the ones claimed now included; null for no
    /// limit. Work waiting in the broker counts: it is what keeps work from ageing there past its lease.
    /// </summary>
    public int? MaxJobsInFlight { get; init; }

    /// <summary>The same window per destination domain; null for no limit.</summary>
    public int? MaxJobsInFlightPerDomain { get; init; }
}

/// <summary>
/// An attempt's result in the outbox (<see cref="ISpool.RecordResultAsync"/>): written by Delivery, applied by Queue.
/// </summary>
public sealed record PendingResult
{
    /// <summary>The lease the attempt ran under; one result per lease.</summary>
    public required Guid LeaseId { get; init; }
    public required Guid MessageId { get; init; }

    /// <summary>The recipients the result covers (used when recording; empty when read back).</summary>
    public IReadOnlyList<long> RecipientIds { get; init; } = [];

    /// <summary>The result itself, opaque to the store (Queue and Delivery agree on its JSON).</summary>
    public required string Payload { get; init; }

    /// <summary>W3C traceparent of the attempt, so applying the result continues the message's trace.</summary>
    public string? TraceParent { get; init; }

    /// <summary>How many times the result has been handed out to be applied, this time included.</summary>
    public int Tries { get; init; }
}

/// <summary>
/// A stop of the lease clock that <see cref="ISpool.BeatLeaseClockAsync"/> made up for: no scheduler reached the store
/// from <see cref="From"/> (the previous heartbeat) to <see cref="To"/>, so every lease still live at
/// <see cref="From"/> was extended by <see cref="Length"/>.
/// </summary>
public sealed record LeaseClockPause
{
    public required DateTimeOffset From { get; init; }
    public required DateTimeOffset To { get; init; }

    /// <summary>How many in-flight recipients had their lease extended.</summary>
    public required int Extended { get; init; }

    public TimeSpan Length => To - From;
}
