namespace MailMesh.Storage;

/// <summary>
/// A webhook endpoint made through the admin API (issue 12), next to the ones in configuration (<c>Queue:Webhooks</c>):
/// Queue POSTs each message event it wants to <see cref="Url"/>, signed with <see cref="Secret"/>. The secret is kept as
/// it is (it signs every request), and the admin API never shows it again after creation.
/// </summary>
public sealed record WebhookEndpoint
{
    public required Guid Id { get; init; }

    /// <summary>Absolute http:// or https:// URL.</summary>
    public required string Url { get; init; }

    /// <summary>The HMAC-SHA256 key of the <c>X-MailMesh-Signature</c> header; null: requests are not signed.</summary>
    public string? Secret { get; init; }

    /// <summary>Comma-separated message event type names the endpoint wants; null: every event.</summary>
    public string? Events { get; init; }

    /// <summary>A disabled endpoint keeps its row and its history but receives nothing.</summary>
    public bool Enabled { get; init; } = true;

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The admin key (or UI user) that made it.</summary>
    public required string CreatedBy { get; init; }

    /// <summary>When and by whom it was last changed (null: never since it was made).</summary>
    public DateTimeOffset? UpdatedAt { get; init; }

    public string? UpdatedBy { get; init; }
}

/// <summary>One POST to a stored webhook endpoint: the event, when, and what came of it.</summary>
public sealed record WebhookDelivery
{
    /// <summary>Ascending in the order rows were written; the keyset of the history's pages. 0 before it is stored.</summary>
    public long Id { get; init; }

    public required Guid EndpointId { get; init; }

    /// <summary>The <c>X-MailMesh-Event-Id</c> (the same on every retry of one event).</summary>
    public required string EventId { get; init; }

    /// <summary>The message event type's name, or <c>Test</c> for a test event sent through the admin API.</summary>
    public required string EventType { get; init; }

    /// <summary>The message the event is about; null for a test event.</summary>
    public Guid? MessageId { get; init; }

    /// <summary>When the request was sent.</summary>
    public required DateTimeOffset At { get; init; }

    /// <summary>The HTTP status answered; null when no answer came (see <see cref="Error"/>).</summary>
    public int? StatusCode { get; init; }

    /// <summary>Why it failed (a timeout, a refused connection, a non-2xx answer); null on success.</summary>
    public string? Error { get; init; }

    /// <summary>How long the request took, in milliseconds.</summary>
    public required int DurationMs { get; init; }

    /// <summary>True when the receiver answered 2xx.</summary>
    public bool Succeeded => StatusCode is >= 200 and < 300 && Error is null;
}

/// <summary>
/// The webhook endpoints made through the admin API and the history of every POST to them, in the spool's database
/// (PostgreSQL shared by every Queue replica, or Standalone's SQLite file). Each change to an endpoint writes its admin
/// audit row in the same transaction.
/// </summary>
public interface IWebhookStore
{
    /// <summary>Every stored endpoint, enabled and disabled, oldest first.</summary>
    Task<IReadOnlyList<WebhookEndpoint>> ListEndpointsAsync(CancellationToken cancellationToken);

    /// <summary>One endpoint, or null.</summary>
    Task<WebhookEndpoint?> GetEndpointAsync(Guid id, CancellationToken cancellationToken);

    /// <summary>Stores a new endpoint, audited as <c>webhook.create</c> by <see cref="WebhookEndpoint.CreatedBy"/>.</summary>
    Task AddEndpointAsync(WebhookEndpoint endpoint, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces the endpoint's url, secret, events and enabled flag with <paramref name="endpoint"/>'s, sets who changed it
    /// (its <see cref="WebhookEndpoint.UpdatedAt"/> and <see cref="WebhookEndpoint.UpdatedBy"/>) and writes an audit row
    /// with <paramref name="action"/>; false (and nothing written) when there is no such endpoint.
    /// </summary>
    Task<bool> UpdateEndpointAsync(WebhookEndpoint endpoint, string action, CancellationToken cancellationToken);

    /// <summary>Deletes the endpoint and its history, audited as <c>webhook.delete</c>; false when there was none.</summary>
    Task<bool> DeleteEndpointAsync(Guid id, string actor, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Appends POST outcomes to the history (rows of endpoints deleted meanwhile are dropped).</summary>
    Task RecordDeliveriesAsync(IReadOnlyList<WebhookDelivery> deliveries, CancellationToken cancellationToken);

    /// <summary>The endpoint's history, newest first, with an id below <paramref name="before"/> when given.</summary>
    Task<IReadOnlyList<WebhookDelivery>> ListDeliveriesAsync(Guid endpointId, long? before, int limit, CancellationToken cancellationToken);

    /// <summary>Deletes history rows written before <paramref name="olderThan"/>; returns how many.</summary>
    Task<int> PruneDeliveriesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken);
}

/// <summary>Audit trail wording shared by both stores and the admin API.</summary>
public static class WebhookAudit
{
    public const string Created = "webhook.create";
    public const string Updated = "webhook.update";
    public const string Disabled = "webhook.disable";
    public const string Enabled = "webhook.enable";
    public const string Deleted = "webhook.delete";

    /// <summary>The audit row's target: the endpoint's id and URL.</summary>
    public static string Target(Guid id, string url) => $"webhook {id} {url}";
}
