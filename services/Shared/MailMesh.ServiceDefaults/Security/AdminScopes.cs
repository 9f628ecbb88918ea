namespace MailMesh.ServiceDefaults.Security;

/// <summary>
/// What an admin API key may do (Admin:ApiKeys:n:Scopes). Read and write are separate so a dashboard or a support
/// tool can see without changing; message status is separate from queue depth because it shows senders, recipients
/// and remote replies (personal data), where depth is only counts.
/// </summary>
public static class AdminScopes
{
    /// <summary>GET /api/v1/messages/{id}: a message's sender, recipients, states and last replies.</summary>
    public const string MessagesRead = "messages:read";

    /// <summary>GET /api/v1/queue: recipients by state (counts only).</summary>
    public const string QueueRead = "queue:read";

    /// <summary>GET /api/v1/suppressions and /api/v1/suppressions/{address}.</summary>
    public const string SuppressionsRead = "suppressions:read";

    /// <summary>PUT and DELETE /api/v1/suppressions/{address}.</summary>
    public const string SuppressionsWrite = "suppressions:write";

    /// <summary>GET /api/v1/mailboxes and /api/v1/mailbox-aliases (Mailbox service): accounts, usage, aliases.</summary>
    public const string MailboxesRead = "mailboxes:read";

    /// <summary>PUT /api/v1/mailboxes/{address}, PUT and DELETE /api/v1/mailbox-aliases/{address}.</summary>
    public const string MailboxesWrite = "mailboxes:write";

    /// <summary>POST /api/v1/admin/messages/…: retry, hold, release, bounce and delete, on one message or a filter.</summary>
    public const string MessagesWrite = "messages:write";

    /// <summary>GET /api/v1/admin/messages/{id}/raw: a message's whole content (headers and body).</summary>
    public const string MessagesContent = "messages:content";

    /// <summary>GET /api/v1/admin/audit: who did which admin action when.</summary>
    public const string AuditRead = "audit:read";

    /// <summary>GET /api/v1/admin/keys: the admin keys' names and scopes (never their hashes).</summary>
    public const string KeysRead = "keys:read";

    /// <summary>GET /api/v1/admin/smtp-users (Ingress): the SMTP AUTH accounts' names (never their password hashes).</summary>
    public const string UsersRead = "users:read";

    /// <summary>
    /// POST /api/v1/admin/keys and .../disable (Queue): make and disable admin and submission API keys. A key may grant
    /// a new admin key only scopes it holds itself.
    /// </summary>
    public const string KeysWrite = "keys:write";

    /// <summary>GET /api/v1/admin/shaping/suspensions (Queue): the live site suspensions and lowered limits (traffic shaping).</summary>
    public const string ShapingRead = "shaping:read";

    /// <summary>POST and DELETE /api/v1/admin/shaping/suspensions (Queue): suspend a site, lift a suspension or lowered limit.</summary>
    public const string ShapingWrite = "shaping:write";

    /// <summary>
    /// POST /api/v1/admin/smtp-users and .../{name}/disable, /enable, /password (Ingress): make SMTP AUTH users, disable
    /// and enable them, reset their passwords.
    /// </summary>
    public const string UsersWrite = "users:write";

    /// <summary>
    /// Act for a person: the key's requests may name the person behind them in the <c>X-MailMesh-Actor</c> header, and
    /// the audit then records "person (via key)". For the admin UI's key; without this scope the header is ignored.
    /// </summary>
    public const string ActAs = "audit:act-as";

    /// <summary>GET /api/v1/admin/webhooks and .../{id}/deliveries (Queue): the webhook endpoints (never their secrets) and their delivery history.</summary>
    public const string WebhooksRead = "webhooks:read";

    /// <summary>POST, PATCH and DELETE /api/v1/admin/webhooks… (Queue): make, change, disable, enable, delete and test webhook endpoints.</summary>
    public const string WebhooksWrite = "webhooks:write";

    /// <summary>GET /api/v1/admin/dkim/keys (Delivery): the DKIM keys' domains, selectors and DNS records (never a private key).</summary>
    public const string DkimRead = "dkim:read";

    /// <summary>Every scope, in the order the documentation lists them.</summary>
    public static IReadOnlyList<string> All { get; } =
        [MessagesRead, QueueRead, SuppressionsRead, SuppressionsWrite, MailboxesRead, MailboxesWrite, MessagesWrite, MessagesContent, AuditRead, KeysRead, UsersRead, KeysWrite, ShapingRead, ShapingWrite, UsersWrite, ActAs, WebhooksRead, WebhooksWrite, DkimRead];

    /// <summary>The claim type carrying one granted scope per claim.</summary>
    public const string ClaimType = "scope";

    /// <summary>Splits a configured scope list: separated by spaces (RFC 6749 §3.3) or commas.</summary>
    public static IEnumerable<string> Split(string? scopes) =>
        (scopes ?? string.Empty).Split([' ', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
