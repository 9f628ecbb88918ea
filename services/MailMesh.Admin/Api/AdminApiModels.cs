namespace MailMesh.Admin.Api;

// The admin API v1's answers as the UI reads them (docs/openapi/admin-v1.yaml); members the UI does not show are left out.

/// <summary>The filter of a message search or a bulk action; null members are not filtered on.</summary>
public sealed record MessageQuery
{
    /// <summary>Envelope sender (exact address).</summary>
    public string? Sender { get; init; }

    /// <summary>A recipient (exact address).</summary>
    public string? Recipient { get; init; }

    /// <summary>A recipient's domain.</summary>
    public string? Domain { get; init; }

    /// <summary>Comma-separated recipient states (queued, in_flight, deferred, held, delivered, bounced, expired, suppressed).</summary>
    public string? State { get; init; }

    /// <summary>Comma-separated bounce classes of the recipient's last attempt.</summary>
    public string? Class { get; init; }

    /// <summary>True when nothing is filtered on.</summary>
    public bool IsEmpty =>
        string.IsNullOrWhiteSpace(Sender) && string.IsNullOrWhiteSpace(Recipient) && string.IsNullOrWhiteSpace(Domain)
        && string.IsNullOrWhiteSpace(State) && string.IsNullOrWhiteSpace(Class);

    /// <summary>The filter's members as (name, value) pairs, empty ones left out, in the API's parameter names.</summary>
    public IEnumerable<KeyValuePair<string, string>> Parameters()
    {
        foreach (var (name, value) in new[] { ("sender", Sender), ("recipient", Recipient), ("domain", Domain), ("state", State), ("class", Class) })
        {
            if (!string.IsNullOrWhiteSpace(value))
            {
                yield return new(name, value.Trim());
            }
        }
    }
}

/// <summary>A page of messages; <see cref="Next"/> is the cursor of the following page.</summary>
public sealed record MessagePage(IReadOnlyList<MessageItem> Items, string? Next);

/// <summary>A message in a search result.</summary>
public sealed record MessageItem(
    Guid Id, string Sender, DateTimeOffset ReceivedAt, long Size, string Origin, DateTimeOffset? CompletedAt,
    int Recipients, string FirstRecipient, IReadOnlyDictionary<string, int> States, DateTimeOffset? NextAttemptAt);

/// <summary>A message's whole life.</summary>
public sealed record MessageDetail(
    Guid Id, string Sender, DateTimeOffset ReceivedAt, long Size, string Origin, DateTimeOffset? CompletedAt,
    string? ClientAddress, string? ClientHelo, string? AuthenticatedUser, string? BodyType, bool SmtpUtf8, bool RequireTls,
    string? EnvelopeId, string? TraceId,
    IReadOnlyList<HeaderItem> Headers, IReadOnlyList<RecipientItem> Recipients, IReadOnlyList<TimelineItem> Events);

/// <summary>One header field, unfolded.</summary>
public sealed record HeaderItem(string Name, string Value);

/// <summary>A recipient of a message with every attempt.</summary>
public sealed record RecipientItem(
    string Address, string Domain, string State, int Attempts, DateTimeOffset? NextAttemptAt, int? LastReplyCode,
    string? LastEnhancedCode, string? LastReplyText, string? LastRemoteHost, IReadOnlyList<AttemptItem> History, string? LastBounceClass);

/// <summary>One delivery attempt; <see cref="Tls"/> is null when no connection answered (or the attempt predates it).</summary>
public sealed record AttemptItem(
    DateTimeOffset AttemptedAt, string State, int? ReplyCode, string? EnhancedCode, string? ReplyText, string? RemoteHost, string? BounceClass,
    AttemptTlsItem? Tls = null);

/// <summary>The TLS of an attempt's session: protocol ("none" in clear text), cipher, and whether and how it was verified.</summary>
public sealed record AttemptTlsItem(string Protocol, string? Cipher, bool Verified, string Verification);

/// <summary>One event of a message's timeline.</summary>
public sealed record TimelineItem(DateTimeOffset At, string Type, string? Recipient, string? Detail);

/// <summary>What an action did.</summary>
public sealed record ActionResult(string Action, int Changed, int SkippedInFlight, long AuditId, int DsnsQueued);

/// <summary>The queue by destination domain and age.</summary>
public sealed record QueueSummary(DateTimeOffset At, IReadOnlyList<string> AgeBuckets, QueueRow Total, IReadOnlyList<QueueRow> Domains, int DomainCount);

/// <summary>One row of the queue summary (a domain, or the total).</summary>
public sealed record QueueRow(
    string Domain, long Total, IReadOnlyList<long> ByAge, IReadOnlyDictionary<string, long> ByState, DateTimeOffset? OldestReceivedAt, double OldestAgeSeconds);

/// <summary>A page of suppressions; <see cref="Next"/> is the cursor of the following page.</summary>
public sealed record SuppressionPage(IReadOnlyList<SuppressionItem> Items, string? Next);

/// <summary>A suppressed address.</summary>
public sealed record SuppressionItem(string Address, string Reason, DateTimeOffset CreatedAt, string Source, DateTimeOffset? ExpiresAt);

/// <summary>A mailbox account.</summary>
public sealed record MailboxItem(string Address, bool Disabled, bool HasPassword, long? QuotaBytes, long UsedBytes, DateTimeOffset CreatedAt);

/// <summary>An API key (name and scopes, never the hash); <see cref="Kind"/> is "admin" or "submission".</summary>
public sealed record KeyItem(string Name, IReadOnlyList<string> Scopes, string Source, string Kind = "admin", bool Enabled = true, string? SenderDomains = null, string? CreatedBy = null);

/// <summary>
/// An SMTP AUTH account (never a password or hash): <see cref="Source"/> is "configuration" or "api" (made through the
/// admin API: only those can be disabled, enabled or given a new password).
/// </summary>
public sealed record SmtpUserItem(string Name, string? SenderDomains, string Source, bool Enabled = true, string? CreatedBy = null, string? DisabledBy = null);

/// <summary>An entry of the audit trail.</summary>
public sealed record AuditItem(long Id, DateTimeOffset At, string Actor, string Action, string Target, int Changed, int SkippedInFlight);

/// <summary>A page of the audit trail.</summary>
public sealed record AuditPage(IReadOnlyList<AuditItem> Items, long? Next);

/// <summary>
/// A live traffic-shaping action on a site (docs/delivery.md, "Traffic shaping"): a suspension (<c>suspend</c>) or lowered
/// limits (<c>limit</c>), for every source IP or one; made by an operator or by an automation rule.
/// </summary>
public sealed record SiteActionItem(
    Guid Id, string Site, string? SourceIp, string Kind, int? MaxConnections, double? MessagesPerSecond, DateTimeOffset CreatedAt,
    DateTimeOffset Until, string Reason, string CreatedBy);

/// <summary>A configured DKIM key and the TXT record to publish for it (never the private key).</summary>
public sealed record DkimKeyItem(string Domain, string Selector, string Algorithm, bool Signing, string RecordName, string RecordValue, string ZoneLine);

/// <summary>Traffic per minute, oldest first (the last minute is the current one, still filling).</summary>
public sealed record TrafficRates(DateTimeOffset At, IReadOnlyList<MinuteRates> Minutes);

/// <summary>One minute: messages accepted, and attempts that delivered, deferred and bounced (or expired) a recipient.</summary>
public sealed record MinuteRates(DateTimeOffset Minute, long Accepted, long Delivered, long Deferred, long Bounced);

/// <summary>The admin API refused or failed a request: its status and the problem details' title and detail.</summary>
public sealed class AdminApiException(int status, string message) : Exception(message)
{
    /// <summary>The HTTP status; 0 when the API could not be reached.</summary>
    public int Status { get; } = status;
}

/// <summary>The answer to making an SMTP user: <see cref="Password"/> only when generated, shown once.</summary>
public sealed record CreatedSmtpUser(string Name, string? SenderDomains, string? Password, DateTimeOffset CreatedAt, string CreatedBy);

/// <summary>The answer to disabling or enabling an SMTP user; <see cref="Changed"/> is false when it already was.</summary>
public sealed record SmtpUserChange(string Name, bool Enabled, bool Changed);

/// <summary>The answer to making an API key: <see cref="Key"/> is its secret, shown once.</summary>
public sealed record CreatedKeyItem(string Name, string Kind, IReadOnlyList<string> Scopes, string? SenderDomains, string Key);

/// <summary>The answer to disabling an API key; <see cref="Changed"/> is false when it was disabled already.</summary>
public sealed record KeyChange(string Name, string Kind, bool Changed);

/// <summary>A webhook endpoint; <see cref="Id"/> is null for one in configuration (Queue:Webhooks:Endpoints).</summary>
public sealed record WebhookItem(
    Guid? Id, string Url, IReadOnlyList<string> Events, [property: System.Text.Json.Serialization.JsonPropertyName("signed")] bool IsSigned, bool Enabled,
    string Source, DateTimeOffset? CreatedAt, string? CreatedBy);

/// <summary>The webhook endpoints.</summary>
public sealed record WebhookList(IReadOnlyList<WebhookItem> Items);

/// <summary>A webhook endpoint just made, with its generated secret (shown this once).</summary>
public sealed record WebhookCreated(WebhookItem Webhook, string? Secret);

/// <summary>One POST to a webhook endpoint.</summary>
public sealed record WebhookDeliveryItem(
    long Id, string EventId, string EventType, Guid? MessageId, DateTimeOffset At, int? StatusCode, string? Error, int DurationMs, bool Succeeded);

/// <summary>A page of an endpoint's history, newest first; <see cref="Next"/> is the <c>before</c> of the following page.</summary>
public sealed record WebhookDeliveryPage(IReadOnlyList<WebhookDeliveryItem> Items, long? Next);

/// <summary>What a test event came to.</summary>
public sealed record WebhookTestResult(Guid Id, string EventId, DateTimeOffset At, int? StatusCode, string? Error, int DurationMs, bool Succeeded);

/// <summary>The answer to resetting an SMTP user's password: <see cref="Password"/> only when generated, shown once.</summary>
public sealed record SmtpPasswordReset(string Name, string? Password, DateTimeOffset ChangedAt);
