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

    public Task<IReadOnlyList<KeyItem>> ListKeysAsync(CancellationToken cancellationToken) => Answer<IReadOnlyList<KeyItem>>([.. Keys]);

    public List<KeyItem> Keys { get; } = [];

    public Task<CreatedKeyItem> CreateKeyAsync(string name, string kind, string? scopes, string? senderDomains, CancellationToken cancellationToken)
    {
        Keys.Add(new KeyItem(name, kind == "admin" ? (scopes ?? string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries) : [], "api", kind, SenderDomains: senderDomains));
        return Answer(new CreatedKeyItem(name, kind, [], senderDomains, "mmk_secret-shown-once"));
    }

    public Task<KeyChange> DisableKeyAsync(string kind, string name, CancellationToken cancellationToken)
    {
        var i = Keys.FindIndex(k => k.Name == name && k.Kind == kind);
        var changed = i >= 0 && Keys[i].Enabled;
        if (changed)
        {
            Keys[i] = Keys[i] with { Enabled = false };
        }

        return Answer(new KeyChange(name, kind, changed));
    }

    public Task<IReadOnlyList<SmtpUserItem>> ListSmtpUsersAsync(CancellationToken cancellationToken) => Answer<IReadOnlyList<SmtpUserItem>>([.. SmtpUsers]);

    public List<SmtpUserItem> SmtpUsers { get; } = [];

    /// <summary>The SMTP users made (name, password given or null, sender domains).</summary>
    public List<(string Name, string? Password, string? SenderDomains)> SmtpUsersCreated { get; } = [];

    public Task<CreatedSmtpUser> CreateSmtpUserAsync(string name, string? password, string? senderDomains, CancellationToken cancellationToken)
    {
        SmtpUsersCreated.Add((name, password, senderDomains));
        SmtpUsers.Add(new SmtpUserItem(name, senderDomains, "api", CreatedBy: "alice (via admin-ui)"));
        return Answer(new CreatedSmtpUser(name, senderDomains, password is null ? "generated-pw-123" : null, DateTimeOffset.Parse("2030-01-02T03:04:05Z"), "alice (via admin-ui)"));
    }

    public Task<SmtpUserChange> SetSmtpUserEnabledAsync(string name, bool enabled, CancellationToken cancellationToken)
    {
        var i = SmtpUsers.FindIndex(u => u.Name == name);
        var changed = i >= 0 && SmtpUsers[i].Enabled != enabled;
        if (changed)
        {
            SmtpUsers[i] = SmtpUsers[i] with { Enabled = enabled, DisabledBy = enabled ? null : "alice (via admin-ui)" };
        }

        return Answer(new SmtpUserChange(name, enabled, changed));
    }

    public List<WebhookItem> Webhooks { get; } = [];

    public Dictionary<Guid, List<WebhookDeliveryItem>> WebhookHistory { get; } = [];

    public Task<WebhookList> ListWebhooksAsync(CancellationToken cancellationToken) => Answer(new WebhookList([.. Webhooks]));

    public Task<WebhookCreated> AddWebhookAsync(string url, IReadOnlyList<string> events, CancellationToken cancellationToken)
    {
        var made = new WebhookItem(Guid.NewGuid(), url, events, true, true, "api", DateTimeOffset.Parse("2030-01-02T03:04:05Z"), "admin-ui");
        Webhooks.Add(made);
        return Answer(new WebhookCreated(made, "whsec_made-by-the-fake"));
    }

    public Task SetWebhookEnabledAsync(Guid id, bool enabled, CancellationToken cancellationToken)
    {
        var index = Webhooks.FindIndex(w => w.Id == id);
        Webhooks[index] = Webhooks[index] with { Enabled = enabled };
        return Answer(true);
    }

    public Task<WebhookDeliveryPage> ListWebhookDeliveriesAsync(Guid id, long? before, int limit, CancellationToken cancellationToken) =>
        Answer(new WebhookDeliveryPage([.. WebhookHistory.GetValueOrDefault(id) ?? []], null));

    public Task<WebhookTestResult> TestWebhookAsync(Guid id, CancellationToken cancellationToken) =>
        Answer(new WebhookTestResult(id, "evt-1", DateTimeOffset.Parse("2030-01-02T03:04:05Z"), 200, null, 12, true));

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

    /// <summary>Every PATCH of a webhook: id, URL, events, whether the secret was rotated.</summary>
    public List<(Guid Id, string Url, IReadOnlyList<string> Events, bool Rotate)> WebhookUpdates { get; } = [];

    public Task<WebhookCreated> UpdateWebhookAsync(Guid id, string url, IReadOnlyList<string> events, bool rotateSecret, CancellationToken cancellationToken)
    {
        WebhookUpdates.Add((id, url, events, rotateSecret));
        var index = Webhooks.FindIndex(w => w.Id == id);
        Webhooks[index] = Webhooks[index] with { Url = url, Events = events };
        return Answer(new WebhookCreated(Webhooks[index], rotateSecret ? "whsec_rotated-by-the-fake" : null));
    }

    public Task DeleteWebhookAsync(Guid id, CancellationToken cancellationToken)
    {
        Webhooks.RemoveAll(w => w.Id == id);
        return Answer(true);
    }

    /// <summary>Every password reset: name and the password given (null: generate one).</summary>
    public List<(string Name, string? Password)> PasswordResets { get; } = [];

    public Task<SmtpPasswordReset> ResetSmtpUserPasswordAsync(string name, string? password, CancellationToken cancellationToken)
    {
        PasswordResets.Add((name, password));
        return Answer(new SmtpPasswordReset(name, password is null ? "reset-pw-456" : null, DateTimeOffset.Parse("2030-01-02T03:04:05Z")));
    }

    private Task<T> Answer<T>(T value) => Failure is { } failure ? Task.FromException<T>(failure) : Task.FromResult(value);
}
