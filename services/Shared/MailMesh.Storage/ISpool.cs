namespace MailMesh.Storage;

/// <summary>
/// The spool: the single source of truth for every accepted message and the delivery state of each recipient.
/// Implementations: <c>PostgresSpool</c> (distributed mode) and <c>SqliteSpool</c> (standalone). Both pass one
/// contract test suite. Every method is safe to call concurrently from any number of processes.
/// </summary>
public interface ISpool
{
    /// <summary>
    /// Commits the message, its envelope and its recipients durably (synchronous commit) before returning.
    /// Only after this returns may Ingress answer 250. Storing the same <see cref="NewMessage.Id"/> twice is a
    /// no-op that returns false (used for idempotent DSN and HTTP submissions).
    /// Each recipient's domain (what jobs are grouped by) is the part after the last '@', lower-cased, with an
    /// internationalised domain converted to its A-label (RFC 5890).
    /// </summary>
    Task<bool> StoreAsync(NewMessage message, CancellationToken cancellationToken);

    /// <summary>The whole stored message (envelope and body), or null if unknown.</summary>
    Task<StoredMessage?> GetMessageAsync(Guid messageId, CancellationToken cancellationToken);

    /// <summary>
    /// Claims due work: recipients that are Queued or Deferred with NextAttemptAt &lt;= now, and InFlight recipients
    /// whose lease has expired (their worker died or the bus lost the work item). Claimed recipients become InFlight
    /// under a fresh lease that expires at now + leaseDuration. Recipients of one message at one domain form one job.
    /// Uses FOR UPDATE SKIP LOCKED (or the store's equivalent) so several Queue replicas never claim the same recipient.
    /// </summary>
    Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(DateTimeOffset now, int maxRecipients, TimeSpan leaseDuration, CancellationToken cancellationToken);

    /// <summary>
    /// Applies the outcome of one attempt. Each update is applied only if the recipient is still InFlight under
    /// <paramref name="leaseId"/>, so a redelivered or late result changes nothing. Returns the updates that were
    /// applied (the caller emits events and DSNs for exactly those).
    /// </summary>
    Task<IReadOnlyList<RecipientUpdate>> CompleteAttemptAsync(Guid messageId, Guid leaseId, IReadOnlyList<RecipientUpdate> updates, CancellationToken cancellationToken);

    /// <summary>
    /// Applies the outcomes of several attempts in one durable transaction, each exactly as
    /// <see cref="CompleteAttemptAsync"/> would (lease-checked, history, message completion); returns the applied
    /// updates of each attempt, in the order given. Queue applies its recorded results in batches with it: one commit
    /// for many mails instead of one each (issue 8).
    /// </summary>
    Task<IReadOnlyList<IReadOnlyList<RecipientUpdate>>> CompleteAttemptsAsync(IReadOnlyList<AttemptCompletion> attempts, CancellationToken cancellationToken);

    /// <summary>The message and the state of each of its recipients, with attempt history; null if unknown.</summary>
    Task<MessageStatus?> GetStatusAsync(Guid messageId, CancellationToken cancellationToken);

    /// <summary>
    /// The status of each known message of <paramref name="messageIds"/> (unknown ones are left out), as
    /// <see cref="GetStatusAsync"/> gives it but without attempt history (<see cref="RecipientStatus.History"/> is
    /// empty): what applying a batch of results reads, in one round trip.
    /// </summary>
    Task<IReadOnlyDictionary<Guid, MessageStatus>> GetStatusesAsync(IReadOnlyCollection<Guid> messageIds, CancellationToken cancellationToken);

    /// <summary>
    /// Returns every InFlight recipient to Queued, due now, and returns how many. Only for a store that one process
    /// owns (Standalone at start-up): every lease found then belongs to a process that is gone, so waiting for the
    /// leases to expire would only delay the mail. Never call it where other replicas may hold live leases.
    /// </summary>
    Task<int> ReleaseLeasesAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>A cheap round trip to the store, for readiness probes.</summary>
    Task PingAsync(CancellationToken cancellationToken);

    /// <summary>Counts of recipients by state (for metrics and the load tool).</summary>
    Task<IReadOnlyDictionary<RecipientState, long>> CountByStateAsync(CancellationToken cancellationToken);

    /// <summary>Deletes messages whose recipients are all final and that completed before <paramref name="olderThan"/>.</summary>
    Task<int> PurgeCompletedAsync(DateTimeOffset olderThan, CancellationToken cancellationToken);

    /// <summary>
    /// <see cref="ClaimDueAsync(DateTimeOffset, int, TimeSpan, CancellationToken)"/> inside an in-flight window: jobs
    /// under live leases (claimed, not yet finished) never exceed <see cref="ClaimRequest.MaxJobsInFlight"/> in total
    /// nor <see cref="ClaimRequest.MaxJobsInFlightPerDomain"/> per domain. A recipient whose result is recorded but not
    /// yet applied (<see cref="RecordResultAsync"/>) is neither claimed again nor counted. New leases have no owner.
    /// </summary>
    Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(ClaimRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Delivery takes the lease before it talks to the destination: one conditional update that makes
    /// <paramref name="ownerId"/> the lease's only owner and extends it to at least <paramref name="leaseExpiresAt"/>,
    /// and returns the message. Null when the lease is no longer <paramref name="leaseId"/> (re-issued, completed, or
    /// the message purged), is owned by another attempt, or its result is already recorded: the attempt must not send.
    /// The content comes inline only up to <see cref="StoredMessage.InlineContentLimit"/> octets; a larger message
    /// comes with <see cref="StoredMessage.DetachedContentLength"/> set, and its content is read with
    /// <see cref="CopyContentAsync"/> (<see cref="Content.AttemptContent"/> does both), so an attempt never holds a large body
    /// on the heap and the store never reads one inside a write transaction.
    /// </summary>
    Task<StoredMessage?> StartAttemptAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken);

    /// <summary>
    /// Streams the stored content of <paramref name="messageId"/> (exactly as <see cref="GetMessageAsync"/> would return
    /// it) into <paramref name="destination"/> without holding it in memory. False when the message is unknown (purged).
    /// </summary>
    Task<bool> CopyContentAsync(Guid messageId, Stream destination, CancellationToken cancellationToken);

    /// <summary>
    /// Extends the lease held by <paramref name="ownerId"/> to at least <paramref name="leaseExpiresAt"/>. False when the
    /// lease was re-issued or is owned by another attempt (the caller must stop before the end of data).
    /// </summary>
    Task<bool> RenewLeaseAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken);

    /// <summary>
    /// Records an attempt's result in the outbox, durably, in the same transaction that takes its recipients out of the
    /// scheduler's reach (they stay InFlight under the lease, with no expiry, until the result is applied). Only while
    /// the recipients are InFlight under <see cref="PendingResult.LeaseId"/>; recording the same lease twice is a no-op.
    /// True when the result is (or already was) recorded, false when the lease is gone.
    /// </summary>
    Task<bool> RecordResultAsync(PendingResult result, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Hands out up to <paramref name="maxResults"/> recorded results that are due to be applied and hides each from
    /// other callers for <paramref name="retryAfter"/> × 2^(tries so far, at most 5), so a result whose application
    /// fails is tried again later with back-off. Any number of Queue replicas may call it.
    /// </summary>
    Task<IReadOnlyList<PendingResult>> ClaimResultsAsync(DateTimeOffset now, int maxResults, TimeSpan retryAfter, CancellationToken cancellationToken);

    /// <summary>Deletes applied results (one round trip for the batch).</summary>
    Task DeleteResultsAsync(IReadOnlyList<Guid> leaseIds, CancellationToken cancellationToken);

    /// <summary>
    /// The lease clock's heartbeat, which the scheduler writes before it claims. A lease can be neither renewed nor
    /// re-claimed while no scheduler reaches the store (a database restart), so its clock stops then: when the previous
    /// heartbeat of any scheduler is older than <paramref name="maxGap"/>, every lease that was still live at it (InFlight,
    /// expiring after it, result not recorded) is extended by the whole gap, up to <paramref name="now"/>, in the same
    /// transaction that moves the heartbeat, so replicas that come back together extend once and a dead lease is
    /// extended only by the time the store was out of reach. Returns the pause made up for, or null (no gap, or the
    /// first heartbeat ever).
    /// </summary>
    Task<LeaseClockPause?> BeatLeaseClockAsync(DateTimeOffset now, TimeSpan maxGap, CancellationToken cancellationToken);
}

/// <summary>
/// Suppression list and rate counters, shared by every Policy replica. Suppressed addresses are compared
/// case-insensitively and returned lower-cased.
/// </summary>
public interface IPolicyStore
{
    Task<Suppression?> GetSuppressionAsync(string address, CancellationToken cancellationToken);
    Task AddSuppressionAsync(Suppression suppression, CancellationToken cancellationToken);
    Task<bool> RemoveSuppressionAsync(string address, CancellationToken cancellationToken);
    Task<IReadOnlyList<Suppression>> ListSuppressionsAsync(int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Adds <paramref name="amount"/> to the counter <paramref name="key"/> in the fixed window that contains
    /// <paramref name="now"/> and returns the new total for that window. Atomic across processes.
    /// </summary>
    Task<long> IncrementCounterAsync(string key, DateTimeOffset now, TimeSpan window, long amount, CancellationToken cancellationToken);
}

/// <summary>Creates or upgrades the schema. Run by the migrator, and at start-up by Standalone.</summary>
public interface ISchemaMigrator
{
    Task MigrateAsync(CancellationToken cancellationToken);
}
