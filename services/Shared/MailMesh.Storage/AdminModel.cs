using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace MailMesh.Storage;

/// <summary>
/// The operators' view of the spool (admin API, issue 12): message search with keyset pagination, actions on one
/// message or on every message matching a filter, the queue summary and the audit trail. Both stores implement it
/// (<c>PostgresSpoolAdmin</c>, <c>SqliteSpoolAdmin</c>) and pass one contract suite.
/// </summary>
/// <remarks>
/// Actions never touch an InFlight recipient (leased, being sent, or with its result recorded but not applied): its
/// attempt owns it until the result is applied, and changing it underneath would make the result's lease check drop
/// it (a delivered recipient shown as held or bounced, or sent again after a release). Such recipients are counted in
/// <see cref="AdminActionResult.SkippedInFlight"/>; the action can simply be repeated once the attempt has finished.
/// </remarks>
public interface ISpoolAdmin
{
    /// <summary>Messages matching <see cref="MessageListQuery.Filter"/>, newest first, one page after the cursor.</summary>
    Task<MessagePage> ListMessagesAsync(MessageListQuery query, CancellationToken cancellationToken);

    /// <summary>
    /// Applies <see cref="AdminActionRequest.Action"/> to the targeted recipients (or messages, for delete) and writes
    /// one audit row. Idempotent: a recipient already in the action's target state is not matched again. A filter is
    /// worked through in chunks of <see cref="SpoolAdminLimits.ActionChunk"/> messages, each its own transaction, so
    /// a bulk action on millions of messages never holds millions of row locks (and an interrupted one is repeated).
    /// </summary>
    Task<AdminActionResult> ApplyAsync(AdminActionRequest request, CancellationToken cancellationToken);

    /// <summary>Pending recipients (queued, in flight, deferred, held) by destination domain and age, like qshape.</summary>
    Task<QueueSummary> SummarizeAsync(DateTimeOffset now, int maxDomains, CancellationToken cancellationToken);

    /// <summary>The newest audit entries first, before <paramref name="beforeId"/> when given.</summary>
    Task<IReadOnlyList<AdminAuditEntry>> ListAuditAsync(long? beforeId, int limit, CancellationToken cancellationToken);
}

/// <summary>Limits shared by both stores.</summary>
public static class SpoolAdminLimits
{
    /// <summary>Largest page of <see cref="ISpoolAdmin.ListMessagesAsync"/>.</summary>
    public const int MaxPage = 500;

    /// <summary>Messages per transaction when an action works through a filter.</summary>
    public const int ActionChunk = 500;

    /// <summary>Most message ids in one action request.</summary>
    public const int MaxIds = 1000;

    /// <summary>
    /// qshape's age buckets (upper bounds, in minutes since the message was received); a last, open bucket holds the
    /// older ones.
    /// </summary>
    public static IReadOnlyList<int> AgeBucketMinutes { get; } = [5, 10, 20, 40, 80, 160, 320, 640, 1280];
}

/// <summary>
/// What to match. Every member that is set must hold (AND); recipient members (<see cref="Recipient"/>,
/// <see cref="Domain"/>, <see cref="States"/>) must hold for one and the same recipient of the message.
/// </summary>
/// <remarks>
/// A new recipient member needs one predicate in <c>AppendRecipientPredicates</c> of each store and a query parameter
/// in the Queue's admin endpoints (as <see cref="BounceClasses"/> has).
/// </remarks>
public sealed record MessageFilter
{
    /// <summary>The envelope sender, compared case-insensitively (ASCII); empty string for the null sender.</summary>
    public string? Sender { get; init; }

    /// <summary>A recipient address, compared case-insensitively (ASCII).</summary>
    public string? Recipient { get; init; }

    /// <summary>A recipient's domain (lower-cased, A-label), as jobs are grouped.</summary>
    public string? Domain { get; init; }

    /// <summary>A recipient in one of these states.</summary>
    public IReadOnlyList<RecipientState>? States { get; init; }

    /// <summary>
    /// A recipient whose last attempt was classified as one of these bounce classes (the names of
    /// <c>MailMesh.Contracts.BounceClass</c>, as the spool stores them).
    /// </summary>
    public IReadOnlyList<string>? BounceClasses { get; init; }

    /// <summary>Received at or after.</summary>
    public DateTimeOffset? ReceivedFrom { get; init; }

    /// <summary>Received before.</summary>
    public DateTimeOffset? ReceivedTo { get; init; }

    /// <summary>True when nothing is filtered (every message matches).</summary>
    public bool IsEmpty => Sender is null && !HasRecipientPredicate && ReceivedFrom is null && ReceivedTo is null;

    internal bool HasRecipientPredicate =>
        Recipient is not null || Domain is not null || States is { Count: > 0 } || BounceClasses is { Count: > 0 };
}

/// <summary>One page request of <see cref="ISpoolAdmin.ListMessagesAsync"/>.</summary>
public sealed record MessageListQuery
{
    public MessageFilter Filter { get; init; } = new();

    /// <summary>1 to <see cref="SpoolAdminLimits.MaxPage"/>.</summary>
    public int Limit { get; init; } = 50;

    /// <summary>The <see cref="MessagePage.Next"/> of the previous page; null for the first.</summary>
    public MessageCursor? After { get; init; }
}

/// <summary>
/// A keyset position in the newest-first message order: (received at, id). Opaque to clients: base64url of the
/// millisecond timestamp and the id.
/// </summary>
public readonly record struct MessageCursor(DateTimeOffset ReceivedAt, Guid Id)
{
    public string Encode()
    {
        Span<byte> bytes = stackalloc byte[24];
        BinaryPrimitives.WriteInt64BigEndian(bytes, ReceivedAt.ToUnixTimeMilliseconds());
        Id.TryWriteBytes(bytes[8..], bigEndian: true, out _);
        return Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    public static bool TryDecode(string? text, out MessageCursor cursor)
    {
        cursor = default;
        if (text is null || text.Length != 32)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[24];
        if (!Convert.TryFromBase64String(text.Replace('-', '+').Replace('_', '/'), bytes, out var written) || written != 24)
        {
            return false;
        }

        var ms = BinaryPrimitives.ReadInt64BigEndian(bytes);
        if (ms < 0 || ms > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
        {
            return false;
        }

        cursor = new MessageCursor(DateTimeOffset.FromUnixTimeMilliseconds(ms), new Guid(bytes[8..], bigEndian: true));
        return true;
    }

    public override string ToString() => Encode();
}

/// <summary>One message in a list: envelope summary and its recipients counted by state.</summary>
public sealed record MessageSummary
{
    public required Guid Id { get; init; }
    public required string Sender { get; init; }
    public required DateTimeOffset ReceivedAt { get; init; }
    public required long Size { get; init; }
    public required MessageOrigin Origin { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }

    /// <summary>Recipients by state (only states with at least one).</summary>
    public required IReadOnlyDictionary<RecipientState, int> States { get; init; }

    /// <summary>The first recipient (lowest address) and how many there are.</summary>
    public required string FirstRecipient { get; init; }
    public required int RecipientCount { get; init; }

    /// <summary>The earliest next attempt of a queued or deferred recipient; null when none waits.</summary>
    public DateTimeOffset? NextAttemptAt { get; init; }
}

public sealed record MessagePage
{
    public required IReadOnlyList<MessageSummary> Items { get; init; }

    /// <summary>The cursor of the next page; null when this page is the last.</summary>
    public MessageCursor? Next { get; init; }
}

/// <summary>An operator's action on messages (admin API).</summary>
public enum AdminAction
{
    /// <summary>Queued or deferred recipients become due now.</summary>
    Retry = 0,

    /// <summary>Queued or deferred recipients become <see cref="RecipientState.Held"/>.</summary>
    Hold = 1,

    /// <summary>Held recipients become queued, due now.</summary>
    Release = 2,

    /// <summary>Queued, deferred or held recipients become bounced (the caller sends the DSN).</summary>
    Bounce = 3,

    /// <summary>Messages with no recipient in flight are deleted with their recipients and history.</summary>
    Delete = 4,
}

public sealed record AdminActionRequest
{
    public required AdminAction Action { get; init; }

    /// <summary>The messages to act on; null to act on <see cref="Filter"/>.</summary>
    public IReadOnlyList<Guid>? MessageIds { get; init; }

    /// <summary>With <see cref="MessageIds"/> it narrows them; alone it selects the messages.</summary>
    public MessageFilter Filter { get; init; } = new();

    /// <summary>Who asked (the admin key's name), for the audit row.</summary>
    public required string Actor { get; init; }

    /// <summary>What was targeted, as the audit row shows it (the request's ids or filter, JSON).</summary>
    public required string Target { get; init; }

    /// <summary>For bounce: the reply text stored as the recipient's last reply and in its history.</summary>
    public string? Reason { get; init; }

    public required DateTimeOffset Now { get; init; }
}

public sealed record AdminActionResult
{
    public required AdminAction Action { get; init; }

    /// <summary>Recipients changed (for delete: messages deleted).</summary>
    public required int Changed { get; init; }

    /// <summary>Matching recipients left alone because they were in flight (for delete: messages kept for that).</summary>
    public required int SkippedInFlight { get; init; }

    public required long AuditId { get; init; }

    /// <summary>For bounce: the recipients bounced, for the DSN.</summary>
    public IReadOnlyList<AdminBouncedRecipient> Bounced { get; init; } = [];
}

/// <summary>A recipient an administrator bounced, as the DSN needs it.</summary>
public sealed record AdminBouncedRecipient
{
    public required Guid MessageId { get; init; }
    public required long RecipientId { get; init; }
    public required string Address { get; init; }
    public string? Notify { get; init; }
    public string? OriginalRecipient { get; init; }
    public string? LastRemoteHost { get; init; }
    public int? LastReplyCode { get; init; }
}

/// <summary>One row of <see cref="QueueSummary"/>: one destination domain.</summary>
public sealed record QueueSummaryRow
{
    public required string Domain { get; init; }
    public required long Total { get; init; }

    /// <summary>Recipients by age bucket (<see cref="SpoolAdminLimits.AgeBucketMinutes"/> and one open bucket).</summary>
    public required IReadOnlyList<long> ByAge { get; init; }
    public required IReadOnlyDictionary<RecipientState, long> ByState { get; init; }
    public required DateTimeOffset OldestReceivedAt { get; init; }
}

public sealed record QueueSummary
{
    public required DateTimeOffset At { get; init; }

    /// <summary>Every pending recipient, all domains.</summary>
    public required QueueSummaryRow Total { get; init; }

    /// <summary>The domains with the most pending recipients, most first (at most the requested number).</summary>
    public required IReadOnlyList<QueueSummaryRow> Domains { get; init; }

    /// <summary>How many domains have pending recipients (more than <see cref="Domains"/> lists when it was cut).</summary>
    public required int DomainCount { get; init; }
}

public sealed record AdminAuditEntry
{
    public required long Id { get; init; }
    public required DateTimeOffset At { get; init; }
    public required string Actor { get; init; }
    public required string Action { get; init; }
    public required string Target { get; init; }
    public required int Changed { get; init; }
    public required int SkippedInFlight { get; init; }
}

/// <summary>Shared by both stores: building summaries from grouped counts.</summary>
internal static class SpoolAdminShared
{
    /// <summary>States an action changes from.</summary>
    public static IReadOnlyList<RecipientState> SourceStates(AdminAction action) => action switch
    {
        AdminAction.Retry => [RecipientState.Queued, RecipientState.Deferred],
        AdminAction.Hold => [RecipientState.Queued, RecipientState.Deferred],
        AdminAction.Release => [RecipientState.Held],
        AdminAction.Bounce => [RecipientState.Queued, RecipientState.Deferred, RecipientState.Held],
        AdminAction.Delete => [],
        _ => throw new ArgumentOutOfRangeException(nameof(action), action, null),
    };

    public static string Name(AdminAction action) => action.ToString().ToLowerInvariant();

    public static void Check(AdminActionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Filter);
        if (request.MessageIds is { Count: > SpoolAdminLimits.MaxIds })
        {
            throw new ArgumentException($"At most {SpoolAdminLimits.MaxIds} message ids per action.", nameof(request));
        }
    }

    public static void Check(MessageListQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(query.Filter);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.Limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.Limit, SpoolAdminLimits.MaxPage);
    }

    /// <summary>Bucket index for a message received at <paramref name="receivedAt"/>.</summary>
    public static int Bucket(DateTimeOffset now, DateTimeOffset receivedAt)
    {
        var minutes = (now - receivedAt).TotalMinutes;
        var buckets = SpoolAdminLimits.AgeBucketMinutes;
        for (var i = 0; i < buckets.Count; i++)
        {
            if (minutes < buckets[i])
            {
                return i;
            }
        }

        return buckets.Count;
    }

    /// <summary>
    /// The queue summary's statement over the pending recipients of <paramref name="table"/> (alias r): one row per
    /// (domain, state) with a count per age bucket (parameters @cut0, @cut1, …: the bucket limits as received times,
    /// newest first) and the oldest received time. Grouped by the leading columns of the pending index (migration 0020),
    /// the database reads that index in order and aggregates as it goes: no sort, no hash, no join to the messages. (It
    /// names no received_at condition, so 0022's state index, partial on received_at, cannot serve it: read that way and
    /// grouped by hashing, the summary took 259-291 ms at p50 at a million messages against 112-141 ms.) With
    /// <paramref name="inFlightApart"/> (PostgreSQL, whose pending index leaves out the in-flight state since migration
    /// 0026), the in-flight recipients are a second part of the statement, which reads them through their own index.
    /// </summary>
    public static string SummarySql(string table, bool inFlightApart)
    {
        return inFlightApart
            ? $"{SummaryPart(table, "r.state IN (0, 2, 7)")} UNION ALL {SummaryPart(table, "r.state = 1")}"
            : SummaryPart(table, "r.state IN (0, 1, 2, 7)");
    }

    private static string SummaryPart(string table, string states)
    {
        var sql = new StringBuilder("SELECT r.domain, r.state");
        var cuts = SpoolAdminLimits.AgeBucketMinutes.Count;
        for (var i = 0; i <= cuts; i++)
        {
            var newer = i == 0 ? "" : $"r.received_at <= @cut{i - 1}";
            var older = i == cuts ? "" : $"r.received_at > @cut{i}";
            var both = newer.Length > 0 && older.Length > 0 ? " AND " : "";
            sql.Append(CultureInfo.InvariantCulture, $", count(*) FILTER (WHERE {newer}{both}{older})");
        }

        return sql.Append(CultureInfo.InvariantCulture, $", min(r.received_at) FROM {table} AS r WHERE {states} GROUP BY r.domain, r.state").ToString();
    }

    /// <summary>The (domain, state, bucket, count, oldest) groups of one row of <see cref="SummarySql"/>'s result.</summary>
    public static IEnumerable<(string Domain, RecipientState State, int Bucket, long Count, DateTimeOffset Oldest)> SummaryGroups(
        string domain, RecipientState state, IReadOnlyList<long> byBucket, DateTimeOffset oldest)
    {
        for (var bucket = 0; bucket < byBucket.Count; bucket++)
        {
            if (byBucket[bucket] > 0)
            {
                yield return (domain, state, bucket, byBucket[bucket], oldest);
            }
        }
    }

    /// <summary>Folds (domain, state, bucket, count, oldest) groups into the summary.</summary>
    public static QueueSummary Summarize(DateTimeOffset now, int maxDomains, IEnumerable<(string Domain, RecipientState State, int Bucket, long Count, DateTimeOffset Oldest)> groups)
    {
        var bucketCount = SpoolAdminLimits.AgeBucketMinutes.Count + 1;
        var rows = new Dictionary<string, Accumulator>(StringComparer.Ordinal);
        var total = new Accumulator("", bucketCount);
        foreach (var g in groups)
        {
            if (!rows.TryGetValue(g.Domain, out var row))
            {
                rows[g.Domain] = row = new Accumulator(g.Domain, bucketCount);
            }

            row.Add(g.State, g.Bucket, g.Count, g.Oldest);
            total.Add(g.State, g.Bucket, g.Count, g.Oldest);
        }

        return new QueueSummary
        {
            At = now,
            Total = total.ToRow(now),
            Domains = [.. rows.Values.OrderByDescending(r => r.Total).ThenBy(r => r.Domain, StringComparer.Ordinal).Take(maxDomains).Select(r => r.ToRow(now))],
            DomainCount = rows.Count,
        };
    }

    public static string Describe(IEnumerable<Guid> ids) =>
        string.Join(',', ids.Select(id => id.ToString("D", CultureInfo.InvariantCulture)));

    /// <summary>
    /// True when a search is driven from the recipients' state index instead of the newest-first walk over the messages
    /// (migration 0022): the filter names states or bounce classes. Those recipients can be old and spread over the whole
    /// spool (17,000 bounced of 1.4 M), so a walk over the messages that probes each one, or a join that takes every
    /// matching recipient and sorts, reads the whole set for one page (0.6-2.9 s at a million messages).
    /// </summary>
    public static bool WalksRecipients(MessageFilter filter) =>
        filter.States is { Count: > 0 } || filter.BounceClasses is { Count: > 0 };

    /// <summary>
    /// The arms of a recipient-driven search (<see cref="WalksRecipients"/>): each is one equality that a B-tree index
    /// returns in (received_at DESC, message_id DESC) order, so the database merges the arms and stops at the page.
    /// Without bounce classes, one arm per state (recipients_state). With classes, one arm per class over the final
    /// states (recipients_final_class, which holds only final recipients with a class) and one arm per pending state
    /// (recipients_state, the class checked from the index). The arms are disjoint and together hold every recipient
    /// the filter matches; every arm also carries the filter's own state and class predicates.
    /// </summary>
    public static IReadOnlyList<SearchArm> SearchArms(MessageFilter filter)
    {
        var states = filter.States is { Count: > 0 } s ? s.Distinct().Order().ToList() : null;
        if (filter.BounceClasses is not { Count: > 0 } classes)
        {
            return [.. (states ?? []).Select(state => new SearchArm(state, null))];
        }

        var requested = states ?? [.. Enum.GetValues<RecipientState>()];
        var arms = new List<SearchArm>();
        if (requested.Any(state => state.IsFinal()))
        {
            arms.AddRange(classes.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select(c => new SearchArm(null, c)));
        }

        arms.AddRange(requested.Where(state => !state.IsFinal()).Select(state => new SearchArm(state, null)));
        return arms;
    }

    private sealed class Accumulator(string domain, int buckets)
    {
        public string Domain { get; } = domain;
        public long Total { get; private set; }
        private readonly long[] _byAge = new long[buckets];
        private readonly Dictionary<RecipientState, long> _byState = [];
        private DateTimeOffset? _oldest;

        public void Add(RecipientState state, int bucket, long count, DateTimeOffset oldest)
        {
            Total += count;
            _byAge[Math.Clamp(bucket, 0, _byAge.Length - 1)] += count;
            _byState[state] = _byState.GetValueOrDefault(state) + count;
            _oldest = _oldest is null || oldest < _oldest ? oldest : _oldest;
        }

        public QueueSummaryRow ToRow(DateTimeOffset now) => new()
        {
            Domain = Domain,
            Total = Total,
            ByAge = _byAge,
            ByState = _byState,
            OldestReceivedAt = _oldest ?? now,
        };
    }
}

/// <summary>The suppression list as operators page through it (admin API): keyset by address, filtered.</summary>
public interface ISuppressionAdmin
{
    /// <summary>Suppressions in address order after <see cref="SuppressionQuery.After"/>, at most <see cref="SuppressionQuery.Limit"/>.</summary>
    Task<IReadOnlyList<Suppression>> ListAsync(SuppressionQuery query, CancellationToken cancellationToken);
}

public sealed record SuppressionQuery
{
    /// <summary>Addresses starting with this (lower-cased; walks the primary key).</summary>
    public string? Prefix { get; init; }

    /// <summary>Addresses at this domain (scans: use with care on a very long list).</summary>
    public string? Domain { get; init; }

    /// <summary>One of <see cref="SuppressionSources"/>.</summary>
    public string? Source { get; init; }

    /// <summary>The last address of the previous page.</summary>
    public string? After { get; init; }

    public int Limit { get; init; } = 100;
}

/// <summary>A message's recipients counted by state, folded into a <see cref="MessageSummary"/>.</summary>
internal sealed class RecipientCounts
{
    private readonly Dictionary<RecipientState, int> _states = [];
    private string? _first;
    private int _count;
    private DateTimeOffset? _next;

    public void Add(RecipientState state, int count, string firstAddress, DateTimeOffset? nextAttemptAt)
    {
        _states[state] = _states.GetValueOrDefault(state) + count;
        _count += count;
        _first = _first is null || string.CompareOrdinal(firstAddress, _first) < 0 ? firstAddress : _first;
        if (state is RecipientState.Queued or RecipientState.Deferred && nextAttemptAt is { } next && (_next is null || next < _next))
        {
            _next = next;
        }
    }

    public MessageSummary ToSummary(Guid id, string sender, DateTimeOffset receivedAt, long size, MessageOrigin origin, DateTimeOffset? completedAt) => new()
    {
        Id = id,
        Sender = sender,
        ReceivedAt = receivedAt,
        Size = size,
        Origin = origin,
        CompletedAt = completedAt,
        States = _states,
        FirstRecipient = _first ?? string.Empty,
        RecipientCount = _count,
        NextAttemptAt = _next,
    };
}

/// <summary>One page of <see cref="ISpoolAdmin.ListMessagesAsync"/> as both stores assemble it: the messages read
/// (one more than the limit, to know whether a next page exists), then their recipients counted by state.</summary>
internal sealed class MessagePageBuilder(int limit)
{
    private readonly List<(Guid Id, string Sender, DateTimeOffset ReceivedAt, long Size, MessageOrigin Origin, DateTimeOffset? CompletedAt)> _rows = [];
    private readonly Dictionary<Guid, RecipientCounts> _counts = [];
    private bool _more;

    public void AddMessage(Guid id, string sender, DateTimeOffset receivedAt, long size, MessageOrigin origin, DateTimeOffset? completedAt) =>
        _rows.Add((id, sender, receivedAt, size, origin, completedAt));

    /// <summary>Drops the look-ahead row and returns the ids of the page, whose recipients are to be counted.</summary>
    public IReadOnlyList<Guid> Trim()
    {
        _more = _rows.Count > limit;
        if (_more)
        {
            _rows.RemoveRange(limit, _rows.Count - limit);
        }

        return [.. _rows.Select(r => r.Id)];
    }

    public void AddCount(Guid id, RecipientState state, int count, string firstAddress, DateTimeOffset? nextAttemptAt)
    {
        if (!_counts.TryGetValue(id, out var counts))
        {
            _counts[id] = counts = new RecipientCounts();
        }

        counts.Add(state, count, firstAddress, nextAttemptAt);
    }

    public MessagePage Build() => new()
    {
        Items = _rows.ConvertAll(r => (_counts.GetValueOrDefault(r.Id) ?? new RecipientCounts()).ToSummary(r.Id, r.Sender, r.ReceivedAt, r.Size, r.Origin, r.CompletedAt)),
        Next = _more ? new MessageCursor(_rows[^1].ReceivedAt, _rows[^1].Id) : null,
    };
}

/// <summary>
/// One arm of a recipient-driven search: recipients in <see cref="State"/>, or final recipients whose last attempt was
/// classified <see cref="BounceClass"/>.
/// </summary>
internal readonly record struct SearchArm(RecipientState? State, string? BounceClass);
