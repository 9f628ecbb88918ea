using System.Net;
using System.Security.Claims;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace MailMesh.Queue;

/// <summary>
/// Traffic shaping's part of the admin API (docs/delivery.md, "Traffic shaping"): the live site actions (suspensions,
/// lowered limits), suspending a site by hand, and lifting an action early. The actions are stored in the spool's
/// database, where every Delivery replica reads them (within Delivery:Shaping:RefreshInterval).
/// </summary>
public static class ShapingAdminEndpoints
{
    internal const int MaxSiteLength = 2000;
    internal static readonly TimeSpan MaxDuration = TimeSpan.FromDays(30);

    /// <summary>Maps <c>GET</c>, <c>POST /api/v1/admin/shaping/suspensions</c> and <c>DELETE .../{id}</c> (docs/openapi/admin-v1.yaml).</summary>
    public static IEndpointRouteBuilder MapShapingAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/v1/admin/shaping").WithTags("Queue");
        api.MapGet("/suspensions", ListAsync).WithName("AdminListSiteSuspensions").RequireAdminScope(AdminScopes.ShapingRead);
        api.MapPost("/suspensions", AddAsync).WithName("AdminSuspendSite").RequireAdminScope(AdminScopes.ShapingWrite);
        api.MapDelete("/suspensions/{id}", RemoveAsync).WithName("AdminLiftSiteSuspension").RequireAdminScope(AdminScopes.ShapingWrite);
        return endpoints;
    }

    internal static async Task<IResult> ListAsync(ISiteActionStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var live = await store.ListLiveAsync(time.GetUtcNow(), cancellationToken);
        return TypedResults.Json(new SiteActionList([.. live.Select(SiteActionView.Of)]), QueueAdminEndpoints.Json);
    }

    internal static async Task<IResult> AddAsync(
        SuspendBody body, ClaimsPrincipal user, ISiteActionStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        var site = body.Site?.Trim().ToLowerInvariant();
        if (string.IsNullOrEmpty(site) || site.Length > MaxSiteLength)
        {
            return BadRequest("Invalid site", "site must be a site name as Delivery names it (e.g. google, or mx1.example.net,mx2.example.net).");
        }

        if (body.SourceIp is { } ip && !IPAddress.TryParse(ip, out _) && ip != "default")
        {
            return BadRequest("Invalid sourceIp", "sourceIp must be an IP address (or omitted: every source IP).");
        }

        var now = time.GetUtcNow();
        DateTimeOffset until;
        if (body.Until is { } at)
        {
            until = at;
        }
        else if (body.Duration is { } text && TimeSpan.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var duration))
        {
            until = now + duration;
        }
        else
        {
            return BadRequest("No duration", "Give until (a time) or duration (hh:mm:ss).");
        }

        if (until <= now || until - now > MaxDuration)
        {
            return BadRequest("Invalid duration", $"The suspension must end in the future, within {MaxDuration.TotalDays} days.");
        }

        var reason = body.Reason?.Trim();
        if (reason is { Length: > QueueAdminEndpoints.MaxReasonLength })
        {
            return BadRequest("Reason too long", $"reason must be at most {QueueAdminEndpoints.MaxReasonLength} characters.");
        }

        var action = new SiteAction
        {
            Id = Guid.NewGuid(),
            Site = site,
            SourceIp = body.SourceIp,
            Kind = SiteActionKind.Suspend,
            CreatedAt = now,
            Until = until,
            Reason = string.IsNullOrEmpty(reason) ? "suspended by an operator" : reason,
            CreatedBy = "admin:" + (user.Identity?.Name ?? "?"),
        };
        await store.AddAsync(action, cancellationToken);
        return TypedResults.Json(SiteActionView.Of(action), QueueAdminEndpoints.Json, statusCode: StatusCodes.Status201Created);
    }

    internal static async Task<IResult> RemoveAsync(string id, ISiteActionStore store, CancellationToken cancellationToken)
    {
        if (!Guid.TryParse(id, out var parsed))
        {
            return BadRequest("Malformed id", "id must be the id of a suspension, as listed.");
        }

        return await store.RemoveAsync(parsed, cancellationToken)
            ? TypedResults.NoContent()
            : TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found", detail: $"No suspension {parsed}.");
    }

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    /// <summary>POST body: the site, optionally one source IP, until when (or for how long), and why.</summary>
    public sealed record SuspendBody(string? Site, string? SourceIp, DateTimeOffset? Until, string? Duration, string? Reason);

    /// <summary>The live actions.</summary>
    public sealed record SiteActionList(IReadOnlyList<SiteActionView> Items);

    /// <summary>One site action as the API shows it.</summary>
    public sealed record SiteActionView(
        Guid Id, string Site, string? SourceIp, string Kind, int? MaxConnections, double? MessagesPerSecond, DateTimeOffset CreatedAt,
        DateTimeOffset Until, string Reason, string CreatedBy)
    {
        public static SiteActionView Of(SiteAction action) => new(
            action.Id, action.Site, action.SourceIp, action.Kind == SiteActionKind.Limit ? "limit" : "suspend", action.MaxConnections,
            action.MessagesPerSecond, action.CreatedAt, action.Until, action.Reason, action.CreatedBy);
    }
}
