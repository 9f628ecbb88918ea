using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace MailMesh.ServiceDefaults.Security;

public static class AdminAuthenticationExtensions
{
    /// <summary>
    /// Registers admin API-key authentication (Admin:ApiKeys) and one authorization policy per scope. Idempotent:
    /// Standalone hosts Policy and Queue, which both call it.
    /// </summary>
    public static IHostApplicationBuilder AddAdminAuthentication(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        if (services.Any(d => d.ServiceType == typeof(AdminKeyRing)))
        {
            return builder;
        }

        services.AddValidatedOptions<AdminApiOptions>();
        services.AddStoredApiKeys();
        services.TryAddSingleton<AdminKeyRing>();
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, AdminAuthenticationHandler>(AdminAuthenticationHandler.SchemeName, displayName: "Admin API key", configureOptions: null);
        var authorization = services.AddAuthorizationBuilder();
        foreach (var scope in AdminScopes.All)
        {
            authorization.AddPolicy(PolicyName(scope), policy => policy
                .AddAuthenticationSchemes(AdminAuthenticationHandler.SchemeName)
                .RequireAuthenticatedUser()
                .RequireClaim(AdminScopes.ClaimType, scope));
        }

        return builder;
    }

    /// <summary>The endpoint answers only an admin API key that holds <paramref name="scope"/> (401 without one, 403 without the scope).</summary>
    public static TBuilder RequireAdminScope<TBuilder>(this TBuilder builder, string scope)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!AdminScopes.All.Contains(scope, StringComparer.Ordinal))
        {
            throw new ArgumentOutOfRangeException(nameof(scope), scope, "not an admin scope");
        }

        return builder.RequireAuthorization(PolicyName(scope)).WithMetadata(new AdminScopeRequirement(scope));
    }

    internal static string PolicyName(string scope) => "MailMesh.Admin:" + scope;
}

/// <summary>Endpoint metadata: the scope an admin endpoint requires (named in the 403 answer).</summary>
public sealed record AdminScopeRequirement(string Scope);

/// <summary>
/// Admin API-key authentication: <c>Authorization: Bearer &lt;key&gt;</c> (RFC 6750 §2.1) checked against the hashes in
/// Admin:ApiKeys. The key's name becomes the principal and each configured scope a "scope" claim. A missing or wrong
/// key is answered 401 with a Bearer challenge (RFC 6750 §3); a key without the endpoint's scope 403 with
/// error="insufficient_scope" (§3.1). Both bodies are RFC 9457 problem details.
/// </summary>
internal sealed partial class AdminAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    AdminKeyRing keys) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "MailMesh.AdminKey";
    private const string Realm = "mailmesh-admin";
    private const string ProblemPrefix = "urn:mailmesh:problem:";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization;
        if (header.Count == 0)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (!ApiKeys.TryReadBearer(header, out var token))
        {
            return Task.FromResult(AuthenticateResult.Fail("The Authorization header is not \"Bearer <admin API key>\"."));
        }

        if (!keys.TryAuthenticate(token, out var key))
        {
            InvalidKey(Logger, Context.Connection.RemoteIpAddress?.ToString() ?? "unknown", Request.Path);
            return Task.FromResult(AuthenticateResult.Fail("The admin API key is not valid."));
        }

        // The person behind a delegating key (the admin UI's): honoured only when the key holds audit:act-as.
        var name = key.Name;
        var actor = Request.Headers[AdminActor.HeaderName];
        if (actor.Count > 0)
        {
            if (!key.Scopes.Contains(AdminScopes.ActAs, StringComparer.Ordinal))
            {
                ActorIgnored(Logger, key.Name, Request.Path);
            }
            else if (actor.Count != 1 || !ApiKeys.IsValidName(actor[0]))
            {
                return Task.FromResult(AuthenticateResult.Fail(
                    $"The {AdminActor.HeaderName} header must name one person: 1 to 64 characters of letters, digits and . _ @ -."));
            }
            else
            {
                name = AdminActor.Describe(actor[0]!, key.Name);
            }
        }

        var identity = new ClaimsIdentity(
            [new Claim(ClaimTypes.Name, name), new Claim(AdminActor.KeyClaimType, key.Name), .. key.Scopes.Select(s => new Claim(AdminScopes.ClaimType, s))],
            SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();

        // RFC 6750 §3: no error code when no credentials were sent; invalid_token when they were wrong (§3.1).
        Response.Headers[HeaderNames.WWWAuthenticate] = result.Failure is null
            ? $"Bearer realm=\"{Realm}\""
            : $"Bearer realm=\"{Realm}\", error=\"invalid_token\", error_description=\"The admin API key is not valid\"";
        var detail = result.Failure is null
            ? "Send an admin API key (Admin:ApiKeys) as \"Authorization: Bearer <key>\"."
            : result.Failure.Message;
        await Problem(StatusCodes.Status401Unauthorized, "unauthorized", "Authentication required", detail, null).ExecuteAsync(Context);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var scope = Context.GetEndpoint()?.Metadata.GetMetadata<AdminScopeRequirement>()?.Scope;
        var name = Context.User.FindFirst(AdminActor.KeyClaimType)?.Value ?? Context.User.Identity?.Name ?? "?";
        MissingScope(Logger, name, scope ?? "?", Request.Path);

        // RFC 6750 §3.1: insufficient_scope, with the scope the resource needs.
        Response.Headers[HeaderNames.WWWAuthenticate] = scope is null
            ? $"Bearer realm=\"{Realm}\", error=\"insufficient_scope\""
            : $"Bearer realm=\"{Realm}\", error=\"insufficient_scope\", scope=\"{scope}\"";
        var detail = scope is null
            ? $"The admin API key '{name}' may not do this."
            : $"The admin API key '{name}' does not have the scope '{scope}' that this endpoint requires (Admin:ApiKeys:n:Scopes).";
        await Problem(StatusCodes.Status403Forbidden, "insufficient-scope", "Insufficient scope", detail, scope).ExecuteAsync(Context);
    }

    private static IResult Problem(int status, string type, string title, string detail, string? scope)
    {
        var problem = new ProblemDetails { Status = status, Type = ProblemPrefix + type, Title = title, Detail = detail };
        if (scope is not null)
        {
            problem.Extensions["scope"] = scope;
        }

        return TypedResults.Problem(problem);
    }

    [LoggerMessage(9000, LogLevel.Warning, "Admin request from {Client} to {Path} presented an invalid admin API key")]
    private static partial void InvalidKey(ILogger logger, string client, string path);

    [LoggerMessage(9001, LogLevel.Warning, "Admin API key {KeyName} lacks scope {Scope} for {Path}")]
    private static partial void MissingScope(ILogger logger, string keyName, string scope, string path);

    [LoggerMessage(9002, LogLevel.Debug, "Admin API key {KeyName} sent X-MailMesh-Actor to {Path} without the audit:act-as scope; ignored")]
    private static partial void ActorIgnored(ILogger logger, string keyName, string path);
}

/// <summary>
/// The admin keys: the configured ones (hashes only; they rotate without a restart when the configuration reloads) and
/// the enabled ones made through the admin API (<see cref="StoredApiKeys"/>).
/// </summary>
internal sealed class AdminKeyRing(IOptionsMonitor<AdminApiOptions> options, StoredApiKeys stored)
{
    private volatile Snapshot? _snapshot;

    public bool TryAuthenticate(ReadOnlySpan<char> key, out AdminKey match) => Keys().TryMatch(key, out match);

    private ApiKeySet<AdminKey> Keys()
    {
        var current = options.CurrentValue;
        var storedKeys = stored.Current;
        var snapshot = _snapshot;
        if (snapshot is null || !ReferenceEquals(snapshot.Options, current) || !ReferenceEquals(snapshot.Stored, storedKeys))
        {
            var configured = current.ApiKeys
                .Where(k => ApiKeys.IsValidName(k.Name))
                .Select(k => (k.Hash, new AdminKey(k.Name!, KnownScopes(k.Scopes))));
            var made = storedKeys.Where(k => k.Kind == Storage.ApiKeyKind.Admin && k.Enabled)
                .Select(k => ((string?)k.Hash, new AdminKey(k.Name, KnownScopes(k.Scopes))));
            snapshot = new Snapshot(current, storedKeys, new ApiKeySet<AdminKey>(configured.Concat(made)));
            _snapshot = snapshot;
        }

        return snapshot.Keys;
    }

    private static string[] KnownScopes(string? scopes) =>
        [.. AdminScopes.Split(scopes).Where(s => AdminScopes.All.Contains(s, StringComparer.Ordinal))];

    private sealed record Snapshot(AdminApiOptions Options, IReadOnlyList<Storage.StoredApiKey> Stored, ApiKeySet<AdminKey> Keys);
}

internal sealed record AdminKey(string Name, string[] Scopes);

/// <summary>
/// Delegation of the audit actor (issue 12): a key holding <see cref="AdminScopes.ActAs"/> (the admin UI's) may name the
/// person it acts for in <see cref="HeaderName"/>; the principal's name, and so every audit row and "created by", is then
/// "person (via key)". Without the scope the header is ignored and the key's own name is recorded.
/// </summary>
public static class AdminActor
{
    /// <summary>The request header naming the person behind the key.</summary>
    public const string HeaderName = "X-MailMesh-Actor";

    /// <summary>The claim carrying the admin key's own name (the principal's name may be a delegated actor).</summary>
    public const string KeyClaimType = "mailmesh:admin-key";

    /// <summary>How a delegated actor is recorded: <c>alice (via admin-ui)</c>.</summary>
    public static string Describe(string person, string keyName) => $"{person} (via {keyName})";
}
