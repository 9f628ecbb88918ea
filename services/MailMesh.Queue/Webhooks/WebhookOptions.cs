using MailMesh.Contracts;
using MailMesh.ServiceDefaults;

namespace MailMesh.Queue.Webhooks;

/// <summary>
/// HTTP endpoints that receive every <see cref="MessageEvent"/> as a JSON POST (section "Queue:Webhooks").
/// </summary>
/// <remarks>
/// Delivery is at least once: a non-2xx answer or a timeout is retried, and when one of several endpoints fails the
/// retry posts to all matching endpoints again, so receivers de-duplicate on the <c>X-MailMesh-Event-Id</c> header.
/// </remarks>
public sealed class WebhookOptions : IValidatedOptions
{
    public static string SectionName => "Queue:Webhooks";

    /// <summary>The receivers in configuration; the ones made through the admin API are stored in the spool's database.</summary>
    public IList<WebhookEndpointOptions> Endpoints { get; } = [];

    /// <summary>
    /// Whether this Queue consumes message events for webhooks at all (default true: endpoints can be made through the
    /// admin API at any time). In the distributed mode that is one more RabbitMQ delivery per event, to Queue's
    /// webhooks queue; a deployment that uses no webhooks can set false and save it. False with configured endpoints
    /// stops start-up.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long one POST may take before it counts as failed and is retried.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often each Queue replica reads the endpoints stored through the admin API, so one made, changed or disabled
    /// on any replica takes effect on every other within this time (the replica that made the change applies it at once).
    /// </summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the delivery history of stored endpoints (one row per POST) is kept before it is pruned.</summary>
    public TimeSpan HistoryRetention { get; set; } = TimeSpan.FromDays(7);

    public IEnumerable<string> Validate()
    {
        if (!Enabled && Endpoints.Count > 0)
        {
            yield return $"{SectionName}:Enabled: is false but {SectionName}:Endpoints lists {Endpoints.Count} endpoint(s); remove them or turn webhooks on";
        }

        if (Timeout <= TimeSpan.Zero)
        {
            yield return $"{SectionName}:Timeout: must be positive";
        }

        // At most 30 s: each refresh is a round of Queue's "webhooks" loop, which fails readiness after Queue:StalledAfter.
        if (RefreshInterval < TimeSpan.FromMilliseconds(100) || RefreshInterval > TimeSpan.FromSeconds(30))
        {
            yield return $"{SectionName}:RefreshInterval: must be between 00:00:00.1 and 00:00:30 (was {RefreshInterval})";
        }

        if (HistoryRetention < TimeSpan.FromMinutes(1))
        {
            yield return $"{SectionName}:HistoryRetention: must be at least 00:01:00 (was {HistoryRetention})";
        }

        for (var i = 0; i < Endpoints.Count; i++)
        {
            var endpoint = Endpoints[i];
            var key = $"{SectionName}:Endpoints:{i}";
            if (!WebhookEndpointOptions.IsHttpUrl(endpoint.Url))
            {
                yield return $"{key}:Url: '{endpoint.Url}' is not an absolute http(s) URL";
            }

            if (!WebhookEndpointOptions.TryParseEvents(endpoint.Events, out _, out var invalid))
            {
                yield return $"{key}:Events: '{invalid}' is not a message event type (one of {string.Join(", ", Enum.GetNames<MessageEventType>())})";
            }
        }
    }
}

/// <summary>One webhook receiver.</summary>
public sealed class WebhookEndpointOptions
{
    /// <summary>Absolute http:// or https:// URL the events are POSTed to.</summary>
    public string? Url { get; set; }

    /// <summary>
    /// Optional shared secret: when set, each request carries <c>X-MailMesh-Signature: sha256=&lt;hex&gt;</c>, the
    /// HMAC-SHA256 (RFC 2104) of <c>"{X-MailMesh-Timestamp}.{body}"</c> under this key.
    /// </summary>
    public string? Secret { get; set; }

    /// <summary>Optional comma-separated <see cref="MessageEventType"/> names to send; empty sends every event.</summary>
    public string? Events { get; set; }

    /// <summary>True when this endpoint wants events of <paramref name="type"/>.</summary>
    internal bool Accepts(MessageEventType type) =>
        !TryParseEvents(Events, out var events, out _) || events is null || events.Contains(type);

    internal static bool IsHttpUrl(string? url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    /// <summary>Parses a comma list of event names; <paramref name="events"/> is null when the list is empty (all events).</summary>
    internal static bool TryParseEvents(string? list, out HashSet<MessageEventType>? events, out string? invalid)
    {
        events = null;
        invalid = null;
        if (string.IsNullOrWhiteSpace(list))
        {
            return true;
        }

        var set = new HashSet<MessageEventType>();
        foreach (var name in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // Names only: Enum.TryParse would also accept "3", which would silently change meaning if the enum grew.
            if (!Enum.TryParse<MessageEventType>(name, ignoreCase: true, out var type) || !Enum.IsDefined(type) || char.IsAsciiDigit(name[0]) || name[0] is '-' or '+')
            {
                invalid = name;
                return false;
            }

            set.Add(type);
        }

        events = set.Count == 0 ? null : set;
        return true;
    }
}
