using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace MailMesh.Policy;

/// <summary>The Policy service's admin API: the suppression list.</summary>
public static class PolicyEndpoints
{
    internal const int DefaultListLimit = 100;
    internal const int MaxListLimit = 10_000;
    internal const int MaxReasonLength = 500;

    /// <summary>
    /// Maps <c>GET /api/v1/suppressions</c> (<c>?limit=</c>, default 100) and
    /// <c>GET|PUT|DELETE /api/v1/suppressions/{address}</c> (PUT takes an optional JSON body
    /// <c>{"reason": "...", "expiresAt": "2027-01-01T00:00:00Z"}</c>; the suppression's source is "api").
    /// Every one needs an admin API key: <c>suppressions:read</c> to read, <c>suppressions:write</c> to change.
    /// </summary>
    public static IEndpointRouteBuilder MapPolicyEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/v1/suppressions").WithTags("Policy");
        api.MapGet("/", ListAsync).WithName("ListSuppressions").RequireAdminScope(AdminScopes.SuppressionsRead);
        api.MapGet("/{address}", GetAsync).WithName("GetSuppression").RequireAdminScope(AdminScopes.SuppressionsRead);
        api.MapPut("/{address}", PutAsync).WithName("PutSuppression").RequireAdminScope(AdminScopes.SuppressionsWrite);
        api.MapDelete("/{address}", DeleteAsync).WithName("DeleteSuppression").RequireAdminScope(AdminScopes.SuppressionsWrite);
        return endpoints;
    }

    internal static async Task<Results<Ok<IReadOnlyList<Suppression>>, ProblemHttpResult>> ListAsync(
        IPolicyStore store, CancellationToken cancellationToken, int? limit = null)
    {
        var take = limit ?? DefaultListLimit;
        if (take is < 1 or > MaxListLimit)
        {
            return BadRequest("Invalid limit", $"limit must be between 1 and {MaxListLimit} (was {take}).");
        }

        return TypedResults.Ok(await store.ListSuppressionsAsync(take, cancellationToken));
    }

    internal static async Task<Results<Ok<Suppression>, ProblemHttpResult>> GetAsync(
        string address, IPolicyStore store, CancellationToken cancellationToken)
    {
        if (!TryNormalize(address, out var normalized, out var problem))
        {
            return problem;
        }

        var suppression = await store.GetSuppressionAsync(normalized, cancellationToken);
        return suppression is null
            ? TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not suppressed", detail: $"{normalized} is not on the suppression list.")
            : TypedResults.Ok(suppression);
    }

    internal static async Task<Results<Ok<Suppression>, ProblemHttpResult>> PutAsync(
        string address,
        SuppressionRequest? request,
        IPolicyStore store,
        TimeProvider time,
        ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        if (!TryNormalize(address, out var normalized, out var problem))
        {
            return problem;
        }

        var reason = string.IsNullOrWhiteSpace(request?.Reason) ? "added by an administrator" : request.Reason.Trim();
        if (reason.Length > MaxReasonLength || reason.Any(char.IsControl))
        {
            return BadRequest("Invalid reason", $"reason must be at most {MaxReasonLength} characters on one line.");
        }

        var now = time.GetUtcNow();
        if (request?.ExpiresAt is { } expiresAt && expiresAt <= now)
        {
            return BadRequest("Invalid expiresAt", $"expiresAt must be in the future (was {expiresAt:O}); omit it for a suppression that does not expire.");
        }

        var suppression = new Suppression
        {
            Address = normalized,
            Reason = reason,
            CreatedAt = now,
            Source = SuppressionSources.Api,
            ExpiresAt = request?.ExpiresAt,
        };
        await store.AddSuppressionAsync(suppression, cancellationToken);
        loggers.CreateLogger(typeof(PolicyEndpoints).FullName!).SuppressionAdded(normalized, reason);
        return TypedResults.Ok(suppression);
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(
        string address, IPolicyStore store, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        if (!TryNormalize(address, out var normalized, out var problem))
        {
            return problem;
        }

        if (!await store.RemoveSuppressionAsync(normalized, cancellationToken))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not suppressed", detail: $"{normalized} is not on the suppression list.");
        }

        loggers.CreateLogger(typeof(PolicyEndpoints).FullName!).SuppressionRemoved(normalized);
        return TypedResults.NoContent();
    }

    /// <summary>An address as policy looks it up: local@domain, lower-cased; no source route, no angle brackets.</summary>
    internal static bool TryNormalize(string address, out string normalized, out ProblemHttpResult problem)
    {
        var trimmed = address.Trim();
        // MailboxParts has validated the domain (NormalizedAddress: a domain name or an address literal).
        if (trimmed.Length <= 254 && !trimmed.StartsWith('<') && MailboxParts.TryParse(trimmed, out var parts) && !parts.HadSourceRoute)
        {
            normalized = parts.Normalized;
            problem = null!;
            return true;
        }

        normalized = string.Empty;
        problem = BadRequest("Malformed address", $"'{(trimmed.Length <= 80 ? trimmed : trimmed[..80] + "…")}' is not an email address (local-part@domain).");
        return false;
    }

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    /// <summary>Body of PUT /api/v1/suppressions/{address}: a reason, and when the suppression ends (absent: never).</summary>
    public sealed record SuppressionRequest(string? Reason, DateTimeOffset? ExpiresAt = null);
}
