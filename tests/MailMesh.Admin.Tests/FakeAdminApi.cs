using MailMesh.Admin.Api;

namespace MailMesh.Admin.Tests;

/// <summary>An admin API in memory: what the pages are given, and what they asked for.</summary>
internal sealed class FakeAdminApi : IAdminApi
{
    public QueueSummary Summary { get; set; } = new(
        DateTimeOffset.Parse("2030-01-02T03:04:05Z"), ["0-5m", "5-60m", "60m+"],
        new QueueRow("*", 0, [0, 0, 0], new Dictionary<string, long>(), null, 0), [], 0);

    public List<MessageItem> Messages { get; } = [];

    public Dictionary<Guid, MessageDetail> Details { get; } = [];

    public List<SuppressionItem> Suppressions { get; } = [];

    public List<(string Action, MessageQuery Filter)> BulkActions { get; } = [];

    public List<MessageQuery> Searches { get; } = [];

    /// <summary>When set, every call fails with it.</summary>
    public AdminApiException? Failure { get; set; }

    public Task<QueueSummary> GetQueueSummaryAsync(int domains, CancellationToken cancellationToken) => Answer(Summary);

    public Task<MessagePage> ListMessagesAsync(MessageQuery query, string? cursor, int limit, CancellationToken cancellationToken)
    {
        Searches.Add(query);
        return Answer(new MessagePage(Messages, Messages.Count > 0 ? "next-cursor" : null));
    }

    public Task<MessageDetail?> GetMessageAsync(Guid id, CancellationToken cancellationToken) => Answer(Details.GetValueOrDefault(id));

    public Task<ActionResult> ActOnMessageAsync(Guid id, string action, string? reason, CancellationToken cancellationToken) =>
        Answer(new ActionResult(action, 1, 0, 1, 0));

    public Task<ActionResult> ActOnFilterAsync(string action, MessageQuery filter, string? reason, CancellationToken cancellationToken)
    {
        BulkActions.Add((action, filter));
        return Answer(new ActionResult(action, 1, 0, 1, 0));
    }

    public Task<AuditPage> ListAuditAsync(long? before, int limit, CancellationToken cancellationToken) => Answer(new AuditPage([], null));

    public Task<SuppressionPage> ListSuppressionsAsync(string? prefix, string? cursor, int limit, CancellationToken cancellationToken) =>
        Answer(new SuppressionPage(Suppressions, null));

    public Task AddSuppressionAsync(string address, string? reason, CancellationToken cancellationToken) => Answer(true);

    public Task RemoveSuppressionAsync(string address, CancellationToken cancellationToken) => Answer(true);

    public Task<IReadOnlyList<MailboxItem>> ListMailboxesAsync(string? after, int limit, CancellationToken cancellationToken) =>
        Answer<IReadOnlyList<MailboxItem>>([]);

    public Task<IReadOnlyList<KeyItem>> ListKeysAsync(CancellationToken cancellationToken) => Answer<IReadOnlyList<KeyItem>>([]);

    public Task<IReadOnlyList<SmtpUserItem>> ListSmtpUsersAsync(CancellationToken cancellationToken) => Answer<IReadOnlyList<SmtpUserItem>>([]);

    public List<SiteActionItem> SiteActions { get; } = [];

    public List<(string Site, string? SourceIp, DateTimeOffset Until, string? Reason)> Suspended { get; } = [];

    public List<Guid> Lifted { get; } = [];

    public Task<IReadOnlyList<SiteActionItem>> ListSiteActionsAsync(CancellationToken cancellationToken) => Answer<IReadOnlyList<SiteActionItem>>(SiteActions);

    public Task<SiteActionItem> SuspendSiteAsync(string site, string? sourceIp, DateTimeOffset until, string? reason, CancellationToken cancellationToken)
    {
        Suspended.Add((site, sourceIp, until, reason));
        return Answer(new SiteActionItem(Guid.NewGuid(), site, sourceIp, "suspend", null, null, until, until, reason ?? "suspended by an operator", "admin:test"));
    }

    public Task LiftSiteActionAsync(Guid id, CancellationToken cancellationToken)
    {
        Lifted.Add(id);
        return Answer(true);
    }

    public List<DkimKeyItem> DkimKeys { get; } = [];

    public Task<IReadOnlyList<DkimKeyItem>> ListDkimKeysAsync(CancellationToken cancellationToken) => Answer<IReadOnlyList<DkimKeyItem>>(DkimKeys);

    public TrafficRates Rates { get; set; } = new(DateTimeOffset.Parse("2030-01-02T03:04:05Z"), []);

    public Task<TrafficRates> GetTrafficRatesAsync(int minutes, CancellationToken cancellationToken) => Answer(Rates);

    private Task<T> Answer<T>(T value) => Failure is { } failure ? Task.FromException<T>(failure) : Task.FromResult(value);
}
