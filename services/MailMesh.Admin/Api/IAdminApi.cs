namespace MailMesh.Admin.Api;

/// <summary>The admin API v1 as the UI's pages use it. Every failure is an <see cref="AdminApiException"/>.</summary>
public interface IAdminApi
{
    /// <summary>GET /api/v1/admin/queue/summary.</summary>
    Task<QueueSummary> GetQueueSummaryAsync(int domains, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/messages: one page of messages matching <paramref name="query"/>.</summary>
    Task<MessagePage> ListMessagesAsync(MessageQuery query, string? cursor, int limit, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/messages/{id}; null when the spool has no such message.</summary>
    Task<MessageDetail?> GetMessageAsync(Guid id, CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/messages/{id}/{action}.</summary>
    Task<ActionResult> ActOnMessageAsync(Guid id, string action, string? reason, CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/messages/actions with a filter (never an empty one).</summary>
    Task<ActionResult> ActOnFilterAsync(string action, MessageQuery filter, string? reason, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/audit.</summary>
    Task<AuditPage> ListAuditAsync(long? before, int limit, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/suppressions.</summary>
    Task<SuppressionPage> ListSuppressionsAsync(string? prefix, string? cursor, int limit, CancellationToken cancellationToken);

    /// <summary>PUT /api/v1/admin/suppressions/{address}.</summary>
    Task AddSuppressionAsync(string address, string? reason, CancellationToken cancellationToken);

    /// <summary>DELETE /api/v1/admin/suppressions/{address}.</summary>
    Task RemoveSuppressionAsync(string address, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/mailboxes; empty when no Mailbox URL is configured.</summary>
    Task<IReadOnlyList<MailboxItem>> ListMailboxesAsync(string? after, int limit, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/keys.</summary>
    Task<IReadOnlyList<KeyItem>> ListKeysAsync(CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/smtp-users; empty when no Ingress URL is configured.</summary>
    Task<IReadOnlyList<SmtpUserItem>> ListSmtpUsersAsync(CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/smtp-users: without <paramref name="password"/> one is generated and returned once.</summary>
    Task<CreatedSmtpUser> CreateSmtpUserAsync(string name, string? password, string? senderDomains, CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/smtp-users/{name}/disable or /enable.</summary>
    Task<SmtpUserChange> SetSmtpUserEnabledAsync(string name, bool enabled, CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/keys: its secret is in the answer only.</summary>
    Task<CreatedKeyItem> CreateKeyAsync(string name, string kind, string? scopes, string? senderDomains, CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/keys/{kind}/{name}/disable.</summary>
    Task<KeyChange> DisableKeyAsync(string kind, string name, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/webhooks.</summary>
    Task<WebhookList> ListWebhooksAsync(CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/webhooks with a generated secret; <paramref name="events"/> empty: every event.</summary>
    Task<WebhookCreated> AddWebhookAsync(string url, IReadOnlyList<string> events, CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/webhooks/{id}/enable or .../disable.</summary>
    Task SetWebhookEnabledAsync(Guid id, bool enabled, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/webhooks/{id}/deliveries.</summary>
    Task<WebhookDeliveryPage> ListWebhookDeliveriesAsync(Guid id, long? before, int limit, CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/webhooks/{id}/test.</summary>
    Task<WebhookTestResult> TestWebhookAsync(Guid id, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/shaping/suspensions (Queue): the live site suspensions and lowered limits.</summary>
    Task<IReadOnlyList<SiteActionItem>> ListSiteActionsAsync(CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/shaping/suspensions (Queue): suspends a site (or one source IP at it) until a time.</summary>
    Task<SiteActionItem> SuspendSiteAsync(string site, string? sourceIp, DateTimeOffset until, string? reason, CancellationToken cancellationToken);

    /// <summary>DELETE /api/v1/admin/shaping/suspensions/{id} (Queue): lifts a suspension or lowered limit early.</summary>
    Task LiftSiteActionAsync(Guid id, CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/dkim/keys (Delivery); empty when no Delivery URL is configured.</summary>
    Task<IReadOnlyList<DkimKeyItem>> ListDkimKeysAsync(CancellationToken cancellationToken);

    /// <summary>GET /api/v1/admin/stats/rates (Queue): accepted, delivered, deferred and bounced per minute.</summary>
    Task<TrafficRates> GetTrafficRatesAsync(int minutes, CancellationToken cancellationToken);

    /// <summary>
    /// PATCH /api/v1/admin/webhooks/{id} (Queue): replaces the URL and the events (empty: every event) and, with
    /// <paramref name="rotateSecret"/>, makes a new signing secret (in the answer, this once).
    /// </summary>
    Task<WebhookCreated> UpdateWebhookAsync(Guid id, string url, IReadOnlyList<string> events, bool rotateSecret, CancellationToken cancellationToken);

    /// <summary>DELETE /api/v1/admin/webhooks/{id} (Queue): the endpoint and its delivery history.</summary>
    Task DeleteWebhookAsync(Guid id, CancellationToken cancellationToken);

    /// <summary>POST /api/v1/admin/smtp-users/{name}/password (Ingress): without <paramref name="password"/> one is generated and returned once.</summary>
    Task<SmtpPasswordReset> ResetSmtpUserPasswordAsync(string name, string? password, CancellationToken cancellationToken);
}
