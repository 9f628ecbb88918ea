using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace MailMesh.Admin.Api;

/// <summary>
/// The admin API over HTTP with the configured key: Queue for messages, Policy for suppressions, Mailbox and Ingress
/// for accounts. In Standalone (no URLs configured) every service is this process, reached on its own listening address.
/// Every write names the logged-in account in X-MailMesh-Actor, so the audit reads "alice (via the UI's key)" when the
/// UI's key holds audit:act-as (the services ignore the header otherwise).
/// </summary>
internal sealed class AdminApiClient(HttpClient http, IOptionsMonitor<AdminUiOptions> options, IServer server, IHttpContextAccessor? context = null) : IAdminApi
{
    internal const string HttpClientName = "MailMesh.Admin.Api";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public Task<QueueSummary> GetQueueSummaryAsync(int domains, CancellationToken cancellationToken) =>
        GetAsync<QueueSummary>(Service.Queue, $"/api/v1/admin/queue/summary?domains={domains}", cancellationToken);

    public Task<MessagePage> ListMessagesAsync(MessageQuery query, string? cursor, int limit, CancellationToken cancellationToken)
    {
        var parameters = query.Parameters().ToList();
        if (!string.IsNullOrEmpty(cursor))
        {
            parameters.Add(new("cursor", cursor));
        }

        parameters.Add(new("limit", limit.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return GetAsync<MessagePage>(Service.Queue, "/api/v1/admin/messages" + QueryString.Create(parameters!), cancellationToken);
    }

    public async Task<MessageDetail?> GetMessageAsync(Guid id, CancellationToken cancellationToken)
    {
        try
        {
            return await GetAsync<MessageDetail>(Service.Queue, $"/api/v1/admin/messages/{id}", cancellationToken);
        }
        catch (AdminApiException e) when (e.Status == StatusCodes.Status404NotFound)
        {
            return null;
        }
    }

    public Task<ActionResult> ActOnMessageAsync(Guid id, string action, string? reason, CancellationToken cancellationToken) =>
        SendAsync<ActionResult>(Service.Queue, HttpMethod.Post, $"/api/v1/admin/messages/{id}/{Uri.EscapeDataString(action)}", new { reason }, cancellationToken);

    public Task<ActionResult> ActOnFilterAsync(string action, MessageQuery filter, string? reason, CancellationToken cancellationToken)
    {
        // Acting on the whole spool is never what an empty form means.
        if (filter.IsEmpty)
        {
            throw new AdminApiException(StatusCodes.Status400BadRequest, "A bulk action needs at least one filter.");
        }

        var body = new { action, filter = filter.Parameters().ToDictionary(p => p.Key, p => p.Value), reason };
        return SendAsync<ActionResult>(Service.Queue, HttpMethod.Post, "/api/v1/admin/messages/actions", body, cancellationToken);
    }

    public Task<AuditPage> ListAuditAsync(long? before, int limit, CancellationToken cancellationToken) =>
        GetAsync<AuditPage>(Service.Queue, $"/api/v1/admin/audit?limit={limit}" + (before is { } b ? $"&before={b}" : string.Empty), cancellationToken);

    public Task<SuppressionPage> ListSuppressionsAsync(string? prefix, string? cursor, int limit, CancellationToken cancellationToken)
    {
        var parameters = new List<KeyValuePair<string, string?>> { new("limit", limit.ToString(System.Globalization.CultureInfo.InvariantCulture)) };
        if (!string.IsNullOrWhiteSpace(prefix))
        {
            parameters.Add(new("prefix", prefix.Trim()));
        }

        if (!string.IsNullOrEmpty(cursor))
        {
            parameters.Add(new("cursor", cursor));
        }

        return GetAsync<SuppressionPage>(Service.Policy, "/api/v1/admin/suppressions/" + QueryString.Create(parameters), cancellationToken);
    }

    public Task AddSuppressionAsync(string address, string? reason, CancellationToken cancellationToken) =>
        SendAsync<JsonElement>(Service.Policy, HttpMethod.Put, "/api/v1/admin/suppressions/" + Uri.EscapeDataString(address.Trim()),
            new { reason = string.IsNullOrWhiteSpace(reason) ? null : reason.Trim() }, cancellationToken);

    public Task RemoveSuppressionAsync(string address, CancellationToken cancellationToken) =>
        SendAsync<JsonElement>(Service.Policy, HttpMethod.Delete, "/api/v1/admin/suppressions/" + Uri.EscapeDataString(address.Trim()), null, cancellationToken);

    public async Task<IReadOnlyList<MailboxItem>> ListMailboxesAsync(string? after, int limit, CancellationToken cancellationToken) =>
        BaseOf(Service.Mailbox) is null
            ? []
            : await GetAsync<List<MailboxItem>>(Service.Mailbox,
                $"/api/v1/admin/mailboxes/?limit={limit}" + (string.IsNullOrEmpty(after) ? string.Empty : "&after=" + Uri.EscapeDataString(after)), cancellationToken);

    public async Task<IReadOnlyList<KeyItem>> ListKeysAsync(CancellationToken cancellationToken) =>
        await GetAsync<List<KeyItem>>(Service.Queue, "/api/v1/admin/keys", cancellationToken);

    public async Task<IReadOnlyList<SmtpUserItem>> ListSmtpUsersAsync(CancellationToken cancellationToken) =>
        BaseOf(Service.Ingress) is null ? [] : await GetAsync<List<SmtpUserItem>>(Service.Ingress, "/api/v1/admin/smtp-users", cancellationToken);

    public Task<CreatedSmtpUser> CreateSmtpUserAsync(string name, string? password, string? senderDomains, CancellationToken cancellationToken) =>
        SendAsync<CreatedSmtpUser>(Service.Ingress, HttpMethod.Post, "/api/v1/admin/smtp-users", new
        {
            name = name.Trim(),
            password = string.IsNullOrEmpty(password) ? null : password,
            senderDomains = string.IsNullOrWhiteSpace(senderDomains) ? null : senderDomains.Trim(),
        }, cancellationToken);

    public Task<SmtpUserChange> SetSmtpUserEnabledAsync(string name, bool enabled, CancellationToken cancellationToken) =>
        SendAsync<SmtpUserChange>(Service.Ingress, HttpMethod.Post,
            $"/api/v1/admin/smtp-users/{Uri.EscapeDataString(name)}/{(enabled ? "enable" : "disable")}", null, cancellationToken);

    public Task<CreatedKeyItem> CreateKeyAsync(string name, string kind, string? scopes, string? senderDomains, CancellationToken cancellationToken) =>
        SendAsync<CreatedKeyItem>(Service.Queue, HttpMethod.Post, "/api/v1/admin/keys", new
        {
            name = name.Trim(),
            kind,
            scopes = string.IsNullOrWhiteSpace(scopes) ? null : scopes.Trim(),
            senderDomains = string.IsNullOrWhiteSpace(senderDomains) ? null : senderDomains.Trim(),
        }, cancellationToken);

    public Task<KeyChange> DisableKeyAsync(string kind, string name, CancellationToken cancellationToken) =>
        SendAsync<KeyChange>(Service.Queue, HttpMethod.Post, $"/api/v1/admin/keys/{Uri.EscapeDataString(kind)}/{Uri.EscapeDataString(name)}/disable", null, cancellationToken);

    public Task<WebhookList> ListWebhooksAsync(CancellationToken cancellationToken) =>
        GetAsync<WebhookList>(Service.Queue, "/api/v1/admin/webhooks", cancellationToken);

    public Task<WebhookCreated> AddWebhookAsync(string url, IReadOnlyList<string> events, CancellationToken cancellationToken) =>
        SendAsync<WebhookCreated>(Service.Queue, HttpMethod.Post, "/api/v1/admin/webhooks", new { url = url.Trim(), events }, cancellationToken);

    public Task SetWebhookEnabledAsync(Guid id, bool enabled, CancellationToken cancellationToken) =>
        SendAsync<JsonElement>(Service.Queue, HttpMethod.Post, $"/api/v1/admin/webhooks/{id}/{(enabled ? "enable" : "disable")}", null, cancellationToken);

    public Task<WebhookDeliveryPage> ListWebhookDeliveriesAsync(Guid id, long? before, int limit, CancellationToken cancellationToken) =>
        GetAsync<WebhookDeliveryPage>(Service.Queue, $"/api/v1/admin/webhooks/{id}/deliveries?limit={limit}" + (before is { } b ? $"&before={b}" : string.Empty), cancellationToken);

    public Task<WebhookTestResult> TestWebhookAsync(Guid id, CancellationToken cancellationToken) =>
        SendAsync<WebhookTestResult>(Service.Queue, HttpMethod.Post, $"/api/v1/admin/webhooks/{id}/test", null, cancellationToken);

    public async Task<IReadOnlyList<SiteActionItem>> ListSiteActionsAsync(CancellationToken cancellationToken) =>
        (await GetAsync<SiteActionList>(Service.Queue, "/api/v1/admin/shaping/suspensions", cancellationToken)).Items;

    public Task<SiteActionItem> SuspendSiteAsync(string site, string? sourceIp, DateTimeOffset until, string? reason, CancellationToken cancellationToken) =>
        SendAsync<SiteActionItem>(Service.Queue, HttpMethod.Post, "/api/v1/admin/shaping/suspensions", new
        {
            site = site.Trim(),
            sourceIp = string.IsNullOrWhiteSpace(sourceIp) ? null : sourceIp.Trim(),
            until,
            reason = string.IsNullOrWhiteSpace(reason) ? null : reason.Trim(),
        }, cancellationToken);

    public Task LiftSiteActionAsync(Guid id, CancellationToken cancellationToken) =>
        SendAsync<JsonElement>(Service.Queue, HttpMethod.Delete, $"/api/v1/admin/shaping/suspensions/{id}", null, cancellationToken);

    public async Task<IReadOnlyList<DkimKeyItem>> ListDkimKeysAsync(CancellationToken cancellationToken) =>
        BaseOf(Service.Delivery) is null ? [] : (await GetAsync<DkimKeyList>(Service.Delivery, "/api/v1/admin/dkim/keys", cancellationToken)).Items;

    public Task<TrafficRates> GetTrafficRatesAsync(int minutes, CancellationToken cancellationToken) =>
        GetAsync<TrafficRates>(Service.Queue, $"/api/v1/admin/stats/rates?minutes={minutes}", cancellationToken);

    public Task<WebhookCreated> UpdateWebhookAsync(Guid id, string url, IReadOnlyList<string> events, bool rotateSecret, CancellationToken cancellationToken) =>
        SendAsync<WebhookCreated>(Service.Queue, HttpMethod.Patch, $"/api/v1/admin/webhooks/{id}",
            new { url = url.Trim(), events, rotateSecret = rotateSecret ? true : (bool?)null }, cancellationToken);

    public Task DeleteWebhookAsync(Guid id, CancellationToken cancellationToken) =>
        SendAsync<JsonElement>(Service.Queue, HttpMethod.Delete, $"/api/v1/admin/webhooks/{id}", null, cancellationToken);

    public Task<SmtpPasswordReset> ResetSmtpUserPasswordAsync(string name, string? password, CancellationToken cancellationToken) =>
        SendAsync<SmtpPasswordReset>(Service.Ingress, HttpMethod.Post, $"/api/v1/admin/smtp-users/{Uri.EscapeDataString(name)}/password",
            new { password = string.IsNullOrEmpty(password) ? null : password }, cancellationToken);

    private Task<T> GetAsync<T>(Service service, string path, CancellationToken cancellationToken) =>
        SendAsync<T>(service, HttpMethod.Get, path, null, cancellationToken);

    private async Task<T> SendAsync<T>(Service service, HttpMethod method, string path, object? body, CancellationToken cancellationToken)
    {
        var baseUri = BaseOf(service) ?? throw new AdminApiException(0, $"No URL is configured for the {service} service (Admin:Ui:{service}Url).");
        using var request = new HttpRequestMessage(method, new Uri(baseUri, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", options.CurrentValue.ApiKey);
        if (method != HttpMethod.Get && Actor() is { } actor)
        {
            request.Headers.Add(ServiceDefaults.Security.AdminActor.HeaderName, actor);
        }
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, options: Json);
        }

        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new AdminApiException(0, $"The {service} service at {baseUri} cannot be reached: {e.Message}");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new AdminApiException(0, $"The {service} service at {baseUri} did not answer in time.");
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw new AdminApiException((int)response.StatusCode, await ProblemAsync(response, cancellationToken));
            }

            if (response.StatusCode == HttpStatusCode.NoContent || typeof(T) == typeof(JsonElement))
            {
                return default!;
            }

            return await response.Content.ReadFromJsonAsync<T>(Json, cancellationToken)
                ?? throw new AdminApiException((int)response.StatusCode, $"The {service} service answered an empty body.");
        }
    }

    /// <summary>The logged-in UI account's name, when this call comes from a page request.</summary>
    private string? Actor() =>
        context?.HttpContext?.User.Identity is { IsAuthenticated: true, Name: { Length: > 0 } name } ? name : null;

    /// <summary>An RFC 9457 problem's title and detail; the status line when the answer is not one.</summary>
    private static async Task<string> ProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
        if (response.Content.Headers.ContentType?.MediaType is not ("application/problem+json" or "application/json"))
        {
            return status;
        }

        try
        {
            var problem = await response.Content.ReadFromJsonAsync<ProblemDetails>(Json, cancellationToken);
            var text = string.Join(": ", new[] { problem?.Title, problem?.Detail }.Where(s => !string.IsNullOrEmpty(s)));
            return text.Length > 0 ? text : status;
        }
        catch (JsonException)
        {
            return status;
        }
    }

    private Uri? BaseOf(Service service)
    {
        var settings = options.CurrentValue;
        var configured = service switch
        {
            Service.Queue => settings.QueueUrl,
            Service.Policy => settings.PolicyUrl,
            Service.Mailbox => settings.MailboxUrl,
            Service.Delivery => settings.DeliveryUrl,
            _ => settings.IngressUrl,
        };
        return configured ?? (settings.SameProcess ? OwnAddress() : null);
    }

    /// <summary>This process's first HTTP address, with a wildcard host replaced by loopback.</summary>
    private Uri? OwnAddress()
    {
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses;
        var first = addresses?.FirstOrDefault(a => a.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) ?? addresses?.FirstOrDefault();
        if (first is null)
        {
            return null;
        }

        var uri = new Uri(first.Replace("://+", "://127.0.0.1", StringComparison.Ordinal).Replace("://*", "://127.0.0.1", StringComparison.Ordinal));
        var host = uri.Host is "0.0.0.0" ? "127.0.0.1" : uri.Host is "[::]" ? "[::1]" : uri.Host;
        return new UriBuilder(uri) { Host = host.Trim('[', ']') == "::" ? "::1" : host, Path = "/" }.Uri;
    }

    private sealed record SiteActionList(IReadOnlyList<SiteActionItem> Items);

    private sealed record DkimKeyList(IReadOnlyList<DkimKeyItem> Items);

    private enum Service
    {
        Queue,
        Policy,
        Mailbox,
        Ingress,
        Delivery,
    }
}
