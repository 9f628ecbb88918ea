using System.Security.Claims;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// The API keys under <c>/api/v1/admin/keys</c> (issue 12): list the configured and the stored ones, make a new admin or
/// submission key (its secret is in the answer, once, and only its SHA-256 is kept), and disable one. Configured keys
/// are managed in configuration and cannot be disabled here. See docs/openapi/admin-v1.yaml.
/// </summary>
internal static class KeyAdminEndpoints
{
    /// <summary>The configuration section of Ingress's submission keys, read here only to keep names unique.</summary>
    private const string SubmissionKeysSection = "Ingress:Api:Keys";

    public static RouteGroupBuilder MapKeyAdminEndpoints(this RouteGroupBuilder api)
    {
        api.MapGet("/keys", ListAsync).WithName("AdminListKeys").RequireAdminScope(AdminScopes.KeysRead);
        api.MapPost("/keys", CreateAsync).WithName("AdminCreateKey").RequireAdminScope(AdminScopes.KeysWrite);
        api.MapPost("/keys/{kind}/{name}/disable", DisableAsync).WithName("AdminDisableKey").RequireAdminScope(AdminScopes.KeysWrite);
        return api;
    }

    internal static async Task<IResult> ListAsync(
        IOptionsMonitor<AdminApiOptions> options, IConfiguration configuration, StoredApiKeys stored, CancellationToken cancellationToken)
    {
        await stored.RefreshAsync(cancellationToken);
        var configured = options.CurrentValue.ApiKeys
            .Select(k => new KeyView(k.Name ?? string.Empty, "admin", [.. AdminScopes.Split(k.Scopes)], null, "configuration", true, null, null, null, null))
            .Concat(SubmissionNames(configuration).Select(n => new KeyView(n.Name, "submission", [], n.SenderDomains, "configuration", true, null, null, null, null)));
        var made = stored.Current.Select(k => new KeyView(
            k.Name, KindName(k.Kind), [.. AdminScopes.Split(k.Scopes)], k.SenderDomains, "api", k.Enabled, k.CreatedAt, k.CreatedBy, k.DisabledAt, k.DisabledBy));
        return TypedResults.Json(configured.Concat(made).ToList(), QueueAdminEndpoints.Json);
    }

    internal static async Task<IResult> CreateAsync(
        CreateKeyBody body,
        ClaimsPrincipal user,
        IOptionsMonitor<AdminApiOptions> options,
        IConfiguration configuration,
        ICredentialStore store,
        StoredApiKeys stored,
        TimeProvider time,
        CancellationToken cancellationToken)
    {
        if (!TryParseKind(body.Kind, out var kind))
        {
            return BadRequest("Invalid kind", "kind must be \"admin\" or \"submission\".");
        }

        if (!ApiKeys.IsValidName(body.Name))
        {
            return BadRequest("Invalid name", "name must be 1 to 64 characters of letters, digits and . _ @ -.");
        }

        var scopes = AdminScopes.Split(body.Scopes).Distinct(StringComparer.Ordinal).ToList();
        string? senderDomains = null;
        if (kind == ApiKeyKind.Admin)
        {
            if (scopes.Count == 0)
            {
                return BadRequest("Invalid scopes", $"an admin key needs one or more scopes of: {string.Join(' ', AdminScopes.All)}.");
            }

            if (scopes.FirstOrDefault(s => !AdminScopes.All.Contains(s, StringComparer.Ordinal)) is { } unknown)
            {
                return BadRequest("Invalid scopes", $"'{unknown}' is not a scope (known: {string.Join(' ', AdminScopes.All)}).");
            }

            // No escalation: keys:write lets a key hand on what it holds, not more.
            if (scopes.FirstOrDefault(s => !user.HasClaim(AdminScopes.ClaimType, s)) is { } missing)
            {
                return TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Scope not held",
                    detail: $"The admin API key '{user.Identity?.Name}' does not hold the scope '{missing}', so it cannot grant it.");
            }
        }
        else
        {
            if (scopes.Count > 0)
            {
                return BadRequest("Invalid scopes", "a submission key has no scopes; it may submit mail (limit it with senderDomains).");
            }

            if (body.SenderDomains is { } domains)
            {
                var list = domains.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (list.Length == 0 || list.Any(d => !Smtp.Mailbox.IsValidDomain(d)))
                {
                    return BadRequest("Invalid senderDomains", "senderDomains must be a comma-separated list of domain names.");
                }

                senderDomains = string.Join(',', list.Select(d => d.ToLowerInvariant()));
            }
        }

        var name = body.Name!;
        var configuredNames = kind == ApiKeyKind.Admin
            ? options.CurrentValue.ApiKeys.Select(k => k.Name)
            : SubmissionNames(configuration).Select(n => (string?)n.Name);
        if (configuredNames.Contains(name, StringComparer.OrdinalIgnoreCase))
        {
            return Conflict(kind, name, "configuration");
        }

        var secret = ApiKeys.Create();
        var key = new StoredApiKey
        {
            Kind = kind,
            Name = name,
            Hash = ApiKeys.Hash(secret),
            Scopes = string.Join(' ', scopes),
            SenderDomains = senderDomains,
            CreatedAt = time.GetUtcNow(),
            CreatedBy = user.Identity?.Name ?? "?",
        };
        if (!await store.AddApiKeyAsync(key, cancellationToken))
        {
            return Conflict(kind, name, "the admin API (disabled keys keep their names)");
        }

        await stored.RefreshAsync(cancellationToken);
        return TypedResults.Json(
            new CreatedKey(name, KindName(kind), scopes, senderDomains, secret, key.Hash, key.CreatedAt),
            QueueAdminEndpoints.Json,
            statusCode: StatusCodes.Status201Created);
    }

    internal static async Task<IResult> DisableAsync(
        string kind, string name, ClaimsPrincipal user, ICredentialStore store, StoredApiKeys stored, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!TryParseKind(kind, out var parsed))
        {
            return BadRequest("Invalid kind", "kind must be \"admin\" or \"submission\".");
        }

        await stored.RefreshAsync(cancellationToken);
        var existing = stored.Current.FirstOrDefault(k => k.Kind == parsed && string.Equals(k.Name, name, StringComparison.Ordinal));
        if (existing is null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown key",
                detail: $"No {kind} key '{name}' was made through the admin API (configured keys are removed from configuration).");
        }

        var changed = await store.DisableApiKeyAsync(parsed, existing.Name, user.Identity?.Name ?? "?", time.GetUtcNow(), cancellationToken);
        await stored.RefreshAsync(cancellationToken);
        return TypedResults.Json(new DisabledKey(existing.Name, KindName(parsed), changed), QueueAdminEndpoints.Json);
    }

    private static IEnumerable<(string Name, string? SenderDomains)> SubmissionNames(IConfiguration configuration) =>
        configuration.GetSection(SubmissionKeysSection).GetChildren()
            .Select(k => (Name: k["Name"], SenderDomains: k["SenderDomains"]))
            .Where(k => !string.IsNullOrEmpty(k.Name))
            .Select(k => (k.Name!, k.SenderDomains));

    private static bool TryParseKind(string? value, out ApiKeyKind kind)
    {
        kind = ApiKeyKind.Admin;
        switch (value?.ToLowerInvariant())
        {
            case "admin":
                return true;
            case "submission":
                kind = ApiKeyKind.Submission;
                return true;
            default:
                return false;
        }
    }

    private static string KindName(ApiKeyKind kind) => kind == ApiKeyKind.Admin ? "admin" : "submission";

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    private static ProblemHttpResult Conflict(ApiKeyKind kind, string name, string where) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Name in use",
            detail: $"A {KindName(kind)} key named '{name}' already exists in {where}.");

    /// <summary>Body of POST keys.</summary>
    public sealed record CreateKeyBody(string? Name, string? Kind, string? Scopes, string? SenderDomains);

    /// <summary>One key as listed; <c>source</c> is "configuration" or "api"; secrets and hashes are never listed.</summary>
    public sealed record KeyView(
        string Name, string Kind, IReadOnlyList<string> Scopes, string? SenderDomains, string Source, bool Enabled,
        DateTimeOffset? CreatedAt, string? CreatedBy, DateTimeOffset? DisabledAt, string? DisabledBy);

    /// <summary>The answer to POST keys: the secret, shown this once.</summary>
    public sealed record CreatedKey(
        string Name, string Kind, IReadOnlyList<string> Scopes, string? SenderDomains, string Key, string Hash, DateTimeOffset CreatedAt);

    /// <summary>The answer to POST keys/{kind}/{name}/disable; <c>changed</c> is false when it was disabled already.</summary>
    public sealed record DisabledKey(string Name, string Kind, bool Changed);
}
