using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Webhooks;

/// <summary>
/// The webhook endpoints under <c>/api/v1/admin/webhooks</c> (issue 12): list the configured and the stored ones, make
/// one (a generated secret is in the answer, once), change, disable, enable and delete one, read its delivery history
/// (keyset pages, newest first) and send it a test event now. Every change is audited with the acting key in the same
/// transaction; this replica applies it at once, the others within Queue:Webhooks:RefreshInterval. Configured endpoints
/// are managed in configuration. See docs/openapi/admin-v1.yaml.
/// </summary>
internal static class WebhookAdminEndpoints
{
    internal const int MaxUrlLength = 2000;
    internal const int MinSecretLength = 16;
    internal const int MaxSecretLength = 256;
    internal const int DefaultPage = 50;
    internal const int MaxPage = 500;

    /// <summary>The event type of a test event (not a <see cref="MessageEventType"/>: it is about no message).</summary>
    internal const string TestEventType = "Test";

    public static RouteGroupBuilder MapWebhookAdminEndpoints(this RouteGroupBuilder api)
    {
        api.MapGet("/webhooks", ListAsync).WithName("AdminListWebhooks").RequireAdminScope(AdminScopes.WebhooksRead);
        api.MapPost("/webhooks", CreateAsync).WithName("AdminCreateWebhook").RequireAdminScope(AdminScopes.WebhooksWrite).AddEndpointFilter(RefuseWhenOff);
        api.MapPatch("/webhooks/{id}", UpdateAsync).WithName("AdminUpdateWebhook").RequireAdminScope(AdminScopes.WebhooksWrite).AddEndpointFilter(RefuseWhenOff);
        api.MapDelete("/webhooks/{id}", DeleteAsync).WithName("AdminDeleteWebhook").RequireAdminScope(AdminScopes.WebhooksWrite).AddEndpointFilter(RefuseWhenOff);
        api.MapPost("/webhooks/{id}/disable", (string id, ClaimsPrincipal user, IWebhookStore store, StoredWebhooks stored, TimeProvider time, CancellationToken ct) =>
            SetEnabledAsync(id, false, user, store, stored, time, ct)).WithName("AdminDisableWebhook").RequireAdminScope(AdminScopes.WebhooksWrite).AddEndpointFilter(RefuseWhenOff);
        api.MapPost("/webhooks/{id}/enable", (string id, ClaimsPrincipal user, IWebhookStore store, StoredWebhooks stored, TimeProvider time, CancellationToken ct) =>
            SetEnabledAsync(id, true, user, store, stored, time, ct)).WithName("AdminEnableWebhook").RequireAdminScope(AdminScopes.WebhooksWrite).AddEndpointFilter(RefuseWhenOff);
        api.MapGet("/webhooks/{id}/deliveries", DeliveriesAsync).WithName("AdminWebhookDeliveries").RequireAdminScope(AdminScopes.WebhooksRead);
        api.MapPost("/webhooks/{id}/test", TestAsync).WithName("AdminTestWebhook").RequireAdminScope(AdminScopes.WebhooksWrite).AddEndpointFilter(RefuseWhenOff);
        return api;
    }

    /// <summary>
    /// With Queue:Webhooks:Enabled false no replica consumes the events, so a stored endpoint would receive nothing: a
    /// change is refused with 409 and the reason, rather than accepted and silently never sent.
    /// </summary>
    private static ValueTask<object?> RefuseWhenOff(EndpointFilterInvocationContext context, EndpointFilterDelegate next) =>
        context.HttpContext.RequestServices.GetRequiredService<IOptions<WebhookOptions>>().Value.Enabled
            ? next(context)
            : ValueTask.FromResult<object?>(TypedResults.Problem(
                statusCode: StatusCodes.Status409Conflict,
                detail: "Webhooks are turned off on this Queue (Queue:Webhooks:Enabled is false): no endpoint would receive events"));

    internal static async Task<IResult> ListAsync(IOptions<WebhookOptions> options, IWebhookStore store, CancellationToken cancellationToken)
    {
        var configured = options.Value.Endpoints.Select(e => new WebhookView(
            null, e.Url ?? string.Empty, EventNames(e.Events), !string.IsNullOrEmpty(e.Secret), true, "configuration", null, null, null, null));
        var made = (await store.ListEndpointsAsync(cancellationToken)).Select(WebhookView.Of);
        return TypedResults.Json(new WebhookList([.. configured.Concat(made)]), QueueAdminEndpoints.Json);
    }

    internal static async Task<IResult> CreateAsync(
        CreateWebhookBody body, ClaimsPrincipal user, IWebhookStore store, StoredWebhooks stored, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (!TryUrl(body.Url, out var url, out var problem)
            || !TryEvents(body.Events, out var events, out problem)
            || !TrySecret(body.Secret, out var secret, out problem))
        {
            return problem;
        }

        var generated = secret is null ? NewSecret() : null;
        var endpoint = new WebhookEndpoint
        {
            Id = Guid.NewGuid(),
            Url = url,
            Secret = secret ?? generated,
            Events = events,
            Enabled = body.Enabled ?? true,
            CreatedAt = time.GetUtcNow(),
            CreatedBy = Actor(user),
        };
        await store.AddEndpointAsync(endpoint, cancellationToken);
        await stored.RefreshAsync(cancellationToken);
        return TypedResults.Json(new CreatedWebhook(WebhookView.Of(endpoint), generated), QueueAdminEndpoints.Json, statusCode: StatusCodes.Status201Created);
    }

    internal static async Task<IResult> UpdateAsync(
        string id, UpdateWebhookBody body, ClaimsPrincipal user, IWebhookStore store, StoredWebhooks stored, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        var (existing, problem) = await FindAsync(id, store, cancellationToken);
        if (existing is null)
        {
            return problem!;
        }

        var changed = existing with { UpdatedAt = time.GetUtcNow(), UpdatedBy = Actor(user) };
        if (body.Url is not null)
        {
            if (!TryUrl(body.Url, out var url, out problem))
            {
                return problem;
            }

            changed = changed with { Url = url };
        }

        if (body.Events is not null)
        {
            if (!TryEvents(body.Events, out var events, out problem))
            {
                return problem;
            }

            changed = changed with { Events = events };
        }

        if (body.Secret is not null && body.RotateSecret == true)
        {
            return BadRequest("Invalid secret", "Give either secret or rotateSecret, not both.");
        }

        string? generated = null;
        if (body.Secret is not null)
        {
            if (!TrySecret(body.Secret, out var secret, out problem))
            {
                return problem;
            }

            changed = changed with { Secret = secret };
        }
        else if (body.RotateSecret == true)
        {
            generated = NewSecret();
            changed = changed with { Secret = generated };
        }

        if (body.Enabled is { } enabled)
        {
            changed = changed with { Enabled = enabled };
        }

        if (!await store.UpdateEndpointAsync(changed, WebhookAudit.Updated, cancellationToken))
        {
            return NotFound(existing.Id);
        }

        await stored.RefreshAsync(cancellationToken);
        return TypedResults.Json(new CreatedWebhook(WebhookView.Of(changed), generated), QueueAdminEndpoints.Json);
    }

    internal static async Task<IResult> SetEnabledAsync(
        string id, bool enabled, ClaimsPrincipal user, IWebhookStore store, StoredWebhooks stored, TimeProvider time, CancellationToken cancellationToken)
    {
        var (existing, problem) = await FindAsync(id, store, cancellationToken);
        if (existing is null)
        {
            return problem!;
        }

        // Idempotent: asking again changes nothing and writes no audit row.
        var changed = existing.Enabled != enabled;
        if (changed)
        {
            var updated = existing with { Enabled = enabled, UpdatedAt = time.GetUtcNow(), UpdatedBy = Actor(user) };
            if (!await store.UpdateEndpointAsync(updated, enabled ? WebhookAudit.Enabled : WebhookAudit.Disabled, cancellationToken))
            {
                return NotFound(existing.Id);
            }

            await stored.RefreshAsync(cancellationToken);
        }

        return TypedResults.Json(new EnabledWebhook(existing.Id, enabled, changed), QueueAdminEndpoints.Json);
    }

    internal static async Task<IResult> DeleteAsync(
        string id, ClaimsPrincipal user, IWebhookStore store, StoredWebhooks stored, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!TryId(id, out var parsed, out var problem))
        {
            return problem;
        }

        if (!await store.DeleteEndpointAsync(parsed, Actor(user), time.GetUtcNow(), cancellationToken))
        {
            return NotFound(parsed);
        }

        await stored.RefreshAsync(cancellationToken);
        return TypedResults.NoContent();
    }

    internal static async Task<IResult> DeliveriesAsync(
        string id, IWebhookStore store, CancellationToken cancellationToken, long? before = null, int? limit = null)
    {
        var take = limit ?? DefaultPage;
        if (take is < 1 or > MaxPage)
        {
            return BadRequest("Invalid limit", $"limit must be between 1 and {MaxPage} (was {take}).");
        }

        if (before is < 1)
        {
            return BadRequest("Invalid before", "before must be the 'next' value of a previous page.");
        }

        var (existing, problem) = await FindAsync(id, store, cancellationToken);
        if (existing is null)
        {
            return problem!;
        }

        var page = await store.ListDeliveriesAsync(existing.Id, before, take, cancellationToken);
        return TypedResults.Json(
            new DeliveryList([.. page.Select(DeliveryView.Of)], page.Count == take ? page[^1].Id : null), QueueAdminEndpoints.Json);
    }

    internal static async Task<IResult> TestAsync(
        string id, ClaimsPrincipal user, IWebhookStore store, StoredWebhooks stored, WebhookSender sender, TimeProvider time, CancellationToken cancellationToken)
    {
        var (existing, problem) = await FindAsync(id, store, cancellationToken);
        if (existing is null)
        {
            return problem!;
        }

        // Sent even to a disabled endpoint (to check a receiver before enabling it); never retried.
        var eventId = NewId.NextGuid().ToString();
        var body = JsonSerializer.SerializeToUtf8Bytes(
            new TestEvent(Guid.Empty, TestEventType, time.GetUtcNow(), $"A test event from MailMesh, sent by {Actor(user)}"),
            MessageEventWebhookConsumer.JsonOptions);
        var attempt = await sender.SendAsync(WebhookTarget.Of(existing), TestEventType, null, body, eventId, cancellationToken);
        var delivery = attempt.ToDelivery(existing.Id, eventId, TestEventType, null);
        await stored.RecordAsync([delivery], cancellationToken);
        return TypedResults.Json(new TestOutcome(existing.Id, eventId, delivery.At, delivery.StatusCode, delivery.Error, delivery.DurationMs, attempt.Succeeded), QueueAdminEndpoints.Json);
    }

    private static async Task<(WebhookEndpoint? Endpoint, IResult? Problem)> FindAsync(string id, IWebhookStore store, CancellationToken cancellationToken)
    {
        if (!TryId(id, out var parsed, out var problem))
        {
            return (null, problem);
        }

        var endpoint = await store.GetEndpointAsync(parsed, cancellationToken);
        return endpoint is null ? (null, NotFound(parsed)) : (endpoint, null);
    }

    private static string Actor(ClaimsPrincipal user) => user.Identity?.Name ?? "?";

    /// <summary>32 random bytes, hexadecimal, with a prefix that says what it is.</summary>
    private static string NewSecret() => "whsec_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    private static bool TryId(string text, out Guid id, out IResult problem)
    {
        problem = null!;
        if (Guid.TryParse(text, out id))
        {
            return true;
        }

        problem = BadRequest("Malformed id", "id must be a webhook endpoint's id (a UUID), as listed.");
        return false;
    }

    private static bool TryUrl(string? text, out string url, out IResult problem)
    {
        url = text?.Trim() ?? string.Empty;
        problem = null!;
        if (url.Length <= MaxUrlLength && WebhookEndpointOptions.IsHttpUrl(url))
        {
            return true;
        }

        problem = BadRequest("Invalid url", $"url must be an absolute http:// or https:// URL of at most {MaxUrlLength} characters.");
        return false;
    }

    /// <summary>The event names, checked and spelled as the enum spells them, comma-separated; null (every event) for none.</summary>
    private static bool TryEvents(IReadOnlyList<string>? names, out string? events, out IResult problem)
    {
        events = null;
        problem = null!;
        if (names is null || names.Count == 0)
        {
            return true;
        }

        var bad = names.FirstOrDefault(n => n is null || n.Contains(',', StringComparison.Ordinal));
        string? invalid = null;
        if (names.Any(n => n is null || n.Contains(',', StringComparison.Ordinal))
            || !WebhookEndpointOptions.TryParseEvents(string.Join(',', names), out var parsed, out invalid))
        {
            problem = BadRequest("Invalid events", $"'{Truncate(invalid ?? bad ?? "")}' is not a message event type (one of {string.Join(", ", Enum.GetNames<MessageEventType>())}).");
            return false;
        }

        events = parsed is null ? null : string.Join(',', parsed.Order().Select(t => t.ToString()));
        return true;
    }

    private static bool TrySecret(string? text, out string? secret, out IResult problem)
    {
        secret = text;
        problem = null!;
        if (text is null || (text.Length is >= MinSecretLength and <= MaxSecretLength && !text.Any(char.IsControl)))
        {
            return true;
        }

        problem = BadRequest("Invalid secret", $"secret must be {MinSecretLength} to {MaxSecretLength} characters on one line (or omitted: one is generated).");
        return false;
    }

    internal static IReadOnlyList<string> EventNames(string? events) =>
        WebhookEndpointOptions.TryParseEvents(events, out var parsed, out _) && parsed is not null ? [.. parsed.Order().Select(t => t.ToString())] : [];

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "…";

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    private static ProblemHttpResult NotFound(Guid id) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown webhook",
            detail: $"No webhook endpoint {id} was made through the admin API (configured endpoints are changed in configuration).");

    /// <summary>Body of POST webhooks: the URL, the event types wanted (none: every event), a secret (omitted: one is generated).</summary>
    public sealed record CreateWebhookBody(string? Url, IReadOnlyList<string>? Events, string? Secret, bool? Enabled);

    /// <summary>Body of PATCH webhooks/{id}: each member given replaces the stored one; <c>events: []</c> means every event.</summary>
    public sealed record UpdateWebhookBody(string? Url, IReadOnlyList<string>? Events, string? Secret, bool? RotateSecret, bool? Enabled);

    /// <summary>The endpoints, configured (no id) and stored.</summary>
    public sealed record WebhookList(IReadOnlyList<WebhookView> Items);

    /// <summary>One endpoint as listed; the secret is never shown, only whether requests are signed.</summary>
    public sealed record WebhookView(
        Guid? Id, string Url, IReadOnlyList<string> Events, bool Signed, bool Enabled, string Source,
        DateTimeOffset? CreatedAt, string? CreatedBy, DateTimeOffset? UpdatedAt, string? UpdatedBy)
    {
        internal static WebhookView Of(WebhookEndpoint e) => new(
            e.Id, e.Url, EventNames(e.Events), !string.IsNullOrEmpty(e.Secret), e.Enabled, "api", e.CreatedAt, e.CreatedBy, e.UpdatedAt, e.UpdatedBy);
    }

    /// <summary>The answer to POST webhooks and PATCH webhooks/{id}: the endpoint, and a generated secret, shown this once.</summary>
    public sealed record CreatedWebhook(WebhookView Webhook, string? Secret);

    /// <summary>The answer to .../disable and .../enable; <c>changed</c> is false when it was so already.</summary>
    public sealed record EnabledWebhook(Guid Id, bool Enabled, bool Changed);

    /// <summary>A page of history, newest first; <c>next</c> is the <c>before</c> of the following page (absent on the last).</summary>
    public sealed record DeliveryList(IReadOnlyList<DeliveryView> Items, long? Next);

    public sealed record DeliveryView(
        long Id, string EventId, string EventType, Guid? MessageId, DateTimeOffset At, int? StatusCode, string? Error, int DurationMs, bool Succeeded)
    {
        internal static DeliveryView Of(WebhookDelivery d) => new(d.Id, d.EventId, d.EventType, d.MessageId, d.At, d.StatusCode, d.Error, d.DurationMs, d.Succeeded);
    }

    /// <summary>The body of a test event: shaped like a message event, about no message.</summary>
    public sealed record TestEvent(Guid MessageId, string Type, DateTimeOffset Timestamp, string Text);

    /// <summary>The answer to POST webhooks/{id}/test: what the receiver answered (it is in the history too).</summary>
    public sealed record TestOutcome(Guid Id, string EventId, DateTimeOffset At, int? StatusCode, string? Error, int DurationMs, bool Succeeded);
}
