using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;

namespace MailMesh.Queue;

/// <summary>
/// The admin dashboard's traffic: messages accepted and attempts delivered, deferred and bounced per minute, from the
/// spool's history (the same for every replica, unlike one process's metrics).
/// </summary>
public static class StatsAdminEndpoints
{
    internal const int MaxMinutes = 24 * 60;

    /// <summary>Maps <c>GET /api/v1/admin/stats/rates</c> (scope <c>queue:read</c>, docs/openapi/admin-v1.yaml).</summary>
    public static IEndpointRouteBuilder MapStatsAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGroup("/api/v1/admin/stats").WithTags("Queue")
            .MapGet("/rates", RatesAsync).WithName("AdminTrafficRates").RequireAdminScope(AdminScopes.QueueRead);
        return endpoints;
    }

    internal static async Task<IResult> RatesAsync(ISpoolRates rates, TimeProvider time, CancellationToken cancellationToken, int? minutes = null)
    {
        var span = minutes ?? 60;
        if (span is < 1 or > MaxMinutes)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid minutes",
                detail: $"minutes must be between 1 and {MaxMinutes} (was {span}).");
        }

        // Whole minutes, the current one last (still filling): minutes without traffic are zeros, so charts need no gaps.
        var now = time.GetUtcNow();
        var last = new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero);
        var first = last.AddMinutes(1 - span);
        var counted = (await rates.CountPerMinuteAsync(first, cancellationToken)).ToDictionary(m => m.Minute);
        var series = Enumerable.Range(0, span).Select(i => first.AddMinutes(i))
            .Select(m => counted.GetValueOrDefault(m) ?? new MinuteCounts(m, 0, 0, 0, 0))
            .Select(m => new MinuteView(m.Minute, m.Accepted, m.Delivered, m.Deferred, m.Bounced))
            .ToList();
        return TypedResults.Json(new RatesView(now, series), QueueAdminEndpoints.Json);
    }

    /// <summary>Per minute, oldest first; the last minute is the current one.</summary>
    public sealed record RatesView(DateTimeOffset At, IReadOnlyList<MinuteView> Minutes);

    /// <summary>One minute: messages accepted, and attempts that delivered, deferred and bounced (or expired) a recipient.</summary>
    public sealed record MinuteView(DateTimeOffset Minute, long Accepted, long Delivered, long Deferred, long Bounced);
}
