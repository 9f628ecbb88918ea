using System.Security.Claims;
using System.Security.Cryptography;
using MailMesh.Ingress.Acceptance;
using MailMesh.Ingress.Auth;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.Http;

/// <summary>
/// The SMTP AUTH users under <c>/api/v1/admin/smtp-users</c> (issue 12; Ingress owns them): list the configured and the
/// stored ones; make one (with a given password, or a generated one returned in this answer only); disable, enable and
/// reset the password of a stored one. Only PBKDF2 hashes are kept and none is ever returned. Configured users are
/// managed in configuration (409 here). Each change is audited with the acting key. See docs/openapi/admin-v1.yaml.
/// </summary>
internal static class SmtpUserAdminEndpoints
{
    /// <summary>The shortest password accepted when one is given.</summary>
    internal const int MinPasswordLength = 8;

    /// <summary>The longest password accepted (an AUTH line is capped anyway).</summary>
    internal const int MaxPasswordLength = 256;

    public static IEndpointRouteBuilder MapSmtpUserAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("/api/v1/admin").WithTags("Ingress");
        api.MapGet("/smtp-users", ListAsync).WithName("AdminListSmtpUsers").RequireAdminScope(AdminScopes.UsersRead);
        api.MapPost("/smtp-users", CreateAsync).WithName("AdminCreateSmtpUser").RequireAdminScope(AdminScopes.UsersWrite).DisableAntiforgery();
        api.MapPost("/smtp-users/{name}/disable", (string name, [AsParameters] Services services, CancellationToken ct) => SetEnabledAsync(name, false, services, ct))
            .WithName("AdminDisableSmtpUser").RequireAdminScope(AdminScopes.UsersWrite).DisableAntiforgery();
        api.MapPost("/smtp-users/{name}/enable", (string name, [AsParameters] Services services, CancellationToken ct) => SetEnabledAsync(name, true, services, ct))
            .WithName("AdminEnableSmtpUser").RequireAdminScope(AdminScopes.UsersWrite).DisableAntiforgery();
        api.MapPost("/smtp-users/{name}/password", ResetPasswordAsync).WithName("AdminResetSmtpUserPassword").RequireAdminScope(AdminScopes.UsersWrite).DisableAntiforgery();
        return endpoints;
    }

    internal static async Task<IResult> ListAsync(IOptionsMonitor<IngressAuthOptions> options, StoredSmtpUsers stored, CancellationToken cancellationToken)
    {
        await stored.RefreshAsync(cancellationToken);
        var configured = options.CurrentValue.Users.Select(u => new SmtpUserView(u.Name, u.SenderDomains, "configuration"));
        var made = stored.Current.Select(u => new SmtpUserView(u.Name, u.SenderDomains, "api")
        {
            Enabled = u.Enabled,
            CreatedAt = u.CreatedAt,
            CreatedBy = u.CreatedBy,
            DisabledAt = u.DisabledAt,
            DisabledBy = u.DisabledBy,
            PasswordChangedAt = u.PasswordChangedAt,
            PasswordChangedBy = u.PasswordChangedBy,
        });
        return TypedResults.Ok(configured.Concat(made).ToList());
    }

    internal static async Task<IResult> CreateAsync(CreateSmtpUserBody body, [AsParameters] Services services, CancellationToken cancellationToken)
    {
        var (user, options, store, stored, time) = services;
        if (!ApiKeys.IsValidName(body.Name))
        {
            return BadRequest("Invalid name", "name must be 1 to 64 characters of letters, digits and . _ @ -.");
        }

        if (PasswordProblem(body.Password) is { } passwordProblem)
        {
            return passwordProblem;
        }

        string? senderDomains = null;
        if (!string.IsNullOrWhiteSpace(body.SenderDomains))
        {
            var list = body.SenderDomains.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            senderDomains = string.Join(',', list.Select(d => d.ToLowerInvariant()));
            if (list.Length == 0 || !SenderDomains.IsValid(senderDomains))
            {
                return BadRequest("Invalid senderDomains", "senderDomains must be a comma-separated list of domain names (each with its sub-domains).");
            }
        }

        var name = body.Name!;
        if (IsConfigured(options, name))
        {
            return Conflict(name, "configuration (Ingress:Auth:Users)");
        }

        var generated = body.Password is null ? GeneratePassword() : null;
        var created = new StoredSmtpUser
        {
            Name = name,
            PasswordHash = PasswordHash.Create(body.Password ?? generated!),
            SenderDomains = senderDomains,
            CreatedAt = time.GetUtcNow(),
            CreatedBy = Actor(user),
        };
        if (!await store.AddSmtpUserAsync(created, cancellationToken))
        {
            return Conflict(name, "the admin API (names compare without regard to case; disabled users keep theirs)");
        }

        await stored.RefreshAsync(cancellationToken);
        return TypedResults.Json(
            new CreatedSmtpUser(name, senderDomains, generated, created.CreatedAt, created.CreatedBy),
            statusCode: StatusCodes.Status201Created);
    }

    internal static async Task<IResult> SetEnabledAsync(string name, bool enabled, Services services, CancellationToken cancellationToken)
    {
        var (user, options, store, stored, time) = services;
        var (existing, problem) = await FindAsync(name, options, stored, cancellationToken);
        if (existing is null)
        {
            return problem!;
        }

        var changed = await store.SetSmtpUserEnabledAsync(existing.Name, enabled, Actor(user), time.GetUtcNow(), cancellationToken);
        await stored.RefreshAsync(cancellationToken);
        return TypedResults.Ok(new ChangedSmtpUser(existing.Name, enabled, changed));
    }

    internal static async Task<IResult> ResetPasswordAsync(string name, ResetPasswordBody? body, [AsParameters] Services services, CancellationToken cancellationToken)
    {
        var (user, options, store, stored, time) = services;
        if (PasswordProblem(body?.Password) is { } passwordProblem)
        {
            return passwordProblem;
        }

        var (existing, problem) = await FindAsync(name, options, stored, cancellationToken);
        if (existing is null)
        {
            return problem!;
        }

        var generated = body?.Password is null ? GeneratePassword() : null;
        var at = time.GetUtcNow();
        if (!await store.SetSmtpUserPasswordAsync(existing.Name, PasswordHash.Create(body?.Password ?? generated!), Actor(user), at, cancellationToken))
        {
            return NotFound(name);
        }

        await stored.RefreshAsync(cancellationToken);
        return TypedResults.Ok(new PasswordReset(existing.Name, generated, at));
    }

    /// <summary>The stored user of that name (any case), or the answer: 409 for a configured one, 404 for none.</summary>
    private static async Task<(StoredSmtpUser? User, IResult? Problem)> FindAsync(
        string name, IOptionsMonitor<IngressAuthOptions> options, StoredSmtpUsers stored, CancellationToken cancellationToken)
    {
        if (IsConfigured(options, name))
        {
            return (null, TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Managed in configuration",
                detail: $"The SMTP user '{name}' is configured (Ingress:Auth:Users); change it there, not through the admin API."));
        }

        await stored.RefreshAsync(cancellationToken);
        return stored.Find(name) is { } existing ? (existing, null) : (null, NotFound(name));
    }

    private static bool IsConfigured(IOptionsMonitor<IngressAuthOptions> options, string name) =>
        options.CurrentValue.Users.Any(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>A given password must be 8 to 256 characters without control characters (SASL PLAIN separates with NUL).</summary>
    private static ProblemHttpResult? PasswordProblem(string? password) =>
        password is null || (password.Length is >= MinPasswordLength and <= MaxPasswordLength && !password.Any(char.IsControl))
            ? null
            : BadRequest("Invalid password", $"password must be {MinPasswordLength} to {MaxPasswordLength} characters without control characters; leave it out to have one generated.");

    /// <summary>24 characters from 18 random octets (144 bits), URL- and shell-safe.</summary>
    internal static string GeneratePassword() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', '-').Replace('/', '_');

    private static string Actor(ClaimsPrincipal user) => user.Identity?.Name ?? "?";

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    private static ProblemHttpResult NotFound(string name) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown SMTP user",
            detail: $"No SMTP user '{name}' was made through the admin API.");

    private static ProblemHttpResult Conflict(string name, string where) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Name in use",
            detail: $"An SMTP user named '{name}' already exists in {where}.");

    /// <summary>What every change needs: the acting key (or person), the configured users, the store and this replica's copy.</summary>
    internal sealed record Services(ClaimsPrincipal User, IOptionsMonitor<IngressAuthOptions> Options, ISmtpUserStore Store, StoredSmtpUsers Stored, TimeProvider Time);

    /// <summary>Body of POST smtp-users: without <c>password</c>, one is generated and returned once.</summary>
    public sealed record CreateSmtpUserBody(string? Name, string? Password, string? SenderDomains);

    /// <summary>Body of POST smtp-users/{name}/password: without <c>password</c>, one is generated and returned once.</summary>
    public sealed record ResetPasswordBody(string? Password);

    /// <summary>The answer to POST smtp-users; <c>password</c> only when generated, shown this once.</summary>
    public sealed record CreatedSmtpUser(string Name, string? SenderDomains, string? Password, DateTimeOffset CreatedAt, string CreatedBy);

    /// <summary>The answer to disable and enable; <c>changed</c> is false when it already was.</summary>
    public sealed record ChangedSmtpUser(string Name, bool Enabled, bool Changed);

    /// <summary>The answer to POST smtp-users/{name}/password; <c>password</c> only when generated, shown this once.</summary>
    public sealed record PasswordReset(string Name, string? Password, DateTimeOffset ChangedAt);
}

/// <summary>
/// An SMTP AUTH account as the admin API lists it: <c>source</c> is "configuration" (Ingress:Auth:Users, always
/// enabled) or "api" (made through the admin API, with who made and disabled it). Never a password or its hash.
/// </summary>
public sealed record SmtpUserView(string Name, string? SenderDomains, string Source)
{
    /// <summary>False when disabled through the admin API.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Made through the admin API: when.</summary>
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>Made through the admin API: by which key (or "person (via key)").</summary>
    public string? CreatedBy { get; init; }

    /// <summary>When it was disabled.</summary>
    public DateTimeOffset? DisabledAt { get; init; }

    /// <summary>Who disabled it.</summary>
    public string? DisabledBy { get; init; }

    /// <summary>When its password was last reset through the admin API.</summary>
    public DateTimeOffset? PasswordChangedAt { get; init; }

    /// <summary>Who last reset it.</summary>
    public string? PasswordChangedBy { get; init; }
}
