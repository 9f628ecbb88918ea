namespace MailMesh.Storage;

/// <summary>
/// A traffic-shaping action on a site (a group of destinations sharing their mail exchangers, see docs/delivery.md
/// "Traffic shaping"): a suspension, or a lowered limit, until a time. Written by Delivery's automation rules and by
/// operators through the admin API; every Delivery replica and Queue read the live ones.
/// </summary>
public sealed record SiteAction
{
    /// <summary>The action's id (what the admin API removes it by).</summary>
    public required Guid Id { get; init; }

    /// <summary>The site's name, as Delivery names it (a provider's site, or the sorted MX host set).</summary>
    public required string Site { get; init; }

    /// <summary>Only deliveries from this source IP (pool address); null: every source IP.</summary>
    public string? SourceIp { get; init; }

    /// <summary><see cref="SiteActionKind.Suspend"/> or <see cref="SiteActionKind.Limit"/>.</summary>
    public required SiteActionKind Kind { get; init; }

    /// <summary>Kind Limit: the connection limit while the action lasts (null: unchanged).</summary>
    public int? MaxConnections { get; init; }

    /// <summary>Kind Limit: the message rate (per second) while the action lasts (null: unchanged).</summary>
    public double? MessagesPerSecond { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When the action ends by itself.</summary>
    public required DateTimeOffset Until { get; init; }

    /// <summary>Why: the rule's name and the reply that triggered it, or the operator's reason.</summary>
    public required string Reason { get; init; }

    /// <summary>Who: <c>rule:&lt;name&gt;</c> or <c>admin:&lt;key name&gt;</c>.</summary>
    public required string CreatedBy { get; init; }
}

/// <summary>What a <see cref="SiteAction"/> does.</summary>
public enum SiteActionKind
{
    /// <summary>No delivery to the site (from the source IP, when set) until the action ends; work waits in the queue.</summary>
    Suspend,

    /// <summary>The site's connection limit and/or message rate are lowered until the action ends.</summary>
    Limit,
}

/// <summary>
/// Site actions and automation-rule hit counters, shared by every Delivery replica and Queue: PostgreSQL in the
/// distributed mode, SQLite in Standalone.
/// </summary>
public interface ISiteActionStore
{
    /// <summary>The actions still live at <paramref name="now"/> (until after it), oldest first.</summary>
    Task<IReadOnlyList<SiteAction>> ListLiveAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Stores an action (an id already stored is left as it is).</summary>
    Task AddAsync(SiteAction action, CancellationToken cancellationToken);

    /// <summary>Removes an action; false when there was none with that id.</summary>
    Task<bool> RemoveAsync(Guid id, CancellationToken cancellationToken);

    /// <summary>
    /// Counts one hit of <paramref name="key"/> in the fixed window of length <paramref name="window"/> containing
    /// <paramref name="now"/> and returns the window's total (atomic across processes); prunes old windows now and then.
    /// </summary>
    Task<long> CountHitAsync(string key, DateTimeOffset now, TimeSpan window, CancellationToken cancellationToken);
}

/// <summary>
/// Budgets shared by every Delivery replica (PostgreSQL only: in Standalone, one process, they live in memory):
/// connection leases counted against a limit, and token buckets, each taken with one statement.
/// </summary>
public interface IShapingBudgetStore
{
    /// <summary>
    /// Takes one of the <paramref name="limit"/> connection slots of <paramref name="budgetKey"/> for
    /// <paramref name="holder"/> until <paramref name="expiresAt"/>, when fewer than <paramref name="limit"/> live leases
    /// exist; true when taken. A slot whose lease expired (its replica died) is free again.
    /// </summary>
    Task<bool> TryTakeConnectionAsync(string budgetKey, int limit, Guid holder, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken);

    /// <summary>Extends the leases of <paramref name="holders"/> (one statement for all of a replica's connections).</summary>
    Task RenewConnectionsAsync(IReadOnlyCollection<Guid> holders, DateTimeOffset expiresAt, CancellationToken cancellationToken);

    /// <summary>Gives a connection slot back.</summary>
    Task ReleaseConnectionAsync(string budgetKey, Guid holder, CancellationToken cancellationToken);

    /// <summary>
    /// Takes one token from the bucket <paramref name="budgetKey"/> (refilled at <paramref name="ratePerSecond"/>, at most
    /// <paramref name="burst"/> tokens): the time to wait before using it (zero: at once), the bucket going into debt by
    /// at most <paramref name="maxWait"/>; null when the wait would be longer (nothing is taken then).
    /// </summary>
    Task<TimeSpan?> TryTakeTokenAsync(string budgetKey, double ratePerSecond, double burst, TimeSpan maxWait, DateTimeOffset now, CancellationToken cancellationToken);
}

/// <summary>The stored names of <see cref="SiteActionKind"/>.</summary>
internal static class SiteActions
{
    public static string KindName(SiteActionKind kind) => kind == SiteActionKind.Limit ? "limit" : "suspend";

    public static SiteActionKind ParseKind(string name) => name == "limit" ? SiteActionKind.Limit : SiteActionKind.Suspend;
}
