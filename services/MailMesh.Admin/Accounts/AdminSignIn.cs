using System.Collections.Concurrent;
using System.Security.Claims;
using System.Text;
using MailMesh.ServiceDefaults.Security;
using Microsoft.Extensions.Options;

namespace MailMesh.Admin;

/// <summary>What a login attempt came to.</summary>
internal enum SignInResult
{
    /// <summary>Name and password match; the account is not locked.</summary>
    Success,

    /// <summary>Unknown name or wrong password (the answer does not say which).</summary>
    Failed,

    /// <summary>Too many failures in a row: refused, whatever the password, until the lockout ends.</summary>
    LockedOut,
}

/// <summary>
/// Checks admin UI logins against Admin:Users: PBKDF2 in constant time, the same work for an unknown name as for a
/// known one, and a lockout after Admin:Ui:MaxFailedLogins failures in a row for Admin:Ui:LockoutDuration. Lockout
/// state is this process's memory: a restart or another replica starts counting afresh (docs/operations.md).
/// </summary>
internal sealed partial class AdminSignIn(
    IOptionsMonitor<AdminAccountsOptions> accounts,
    IOptionsMonitor<AdminUiOptions> options,
    TimeProvider time,
    ILogger<AdminSignIn> logger)
{
    // Verified when the name is unknown, so the time taken does not tell which names exist.
    private static readonly PasswordHash.Parsed Decoy = CreateDecoy();

    private const int MaxTracked = 10_000;

    private readonly ConcurrentDictionary<string, Failures> _failures = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Checks <paramref name="name"/> and <paramref name="password"/>; on success the principal to sign in.</summary>
    public SignInResult Check(string? name, string? password, out ClaimsPrincipal? principal)
    {
        principal = null;
        name = (name ?? string.Empty).Trim();
        var now = time.GetUtcNow();
        var settings = options.CurrentValue;
        if (name.Length is 0 or > 64)
        {
            return SignInResult.Failed;
        }

        if (_failures.TryGetValue(name, out var failures) && failures.LockedUntil > now)
        {
            LoginLocked(logger, name);
            return SignInResult.LockedOut;
        }

        var user = accounts.CurrentValue.Users.FirstOrDefault(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));
        var hash = user is not null && PasswordHash.TryParse(user.PasswordHash, out var parsed, out _) ? parsed : Decoy;
        var matches = hash.Verify(Encoding.UTF8.GetBytes(password ?? string.Empty)) && user is not null;
        if (!matches || !AdminRoles.TryParse(user!.Role, out var role))
        {
            // Bounded memory whatever names are tried: forget counts (never an active lockout) past the cap.
            if (_failures.Count >= MaxTracked)
            {
                foreach (var entry in _failures.Where(f => f.Value.LockedUntil is null || f.Value.LockedUntil <= now).Take(MaxTracked / 2))
                {
                    _failures.TryRemove(entry.Key, out _);
                }
            }

            var updated = _failures.AddOrUpdate(
                name,
                _ => new Failures(1, null),
                (_, f) => new Failures(f.LockedUntil is { } until && until <= now ? 1 : f.Count + 1, null));
            if (updated.Count >= settings.MaxFailedLogins)
            {
                _failures[name] = updated with { LockedUntil = now + settings.LockoutDuration };
                AccountLocked(logger, name, updated.Count, settings.LockoutDuration);
            }
            else
            {
                LoginFailed(logger, name);
            }

            return SignInResult.Failed;
        }

        _failures.TryRemove(name, out _);
        var identity = new ClaimsIdentity(AdminUiExtensions.CookieScheme, ClaimTypes.Name, ClaimTypes.Role);
        identity.AddClaim(new Claim(ClaimTypes.Name, user.Name!));
        foreach (var granted in AdminRoles.Granted(role))
        {
            identity.AddClaim(new Claim(ClaimTypes.Role, granted));
        }

        principal = new ClaimsPrincipal(identity);
        LoggedIn(logger, user.Name!, role);
        return SignInResult.Success;
    }

    private static PasswordHash.Parsed CreateDecoy()
    {
        return PasswordHash.TryParse(PasswordHash.Create(Guid.NewGuid().ToString()), out var parsed, out var error)
            ? parsed
            : throw new InvalidOperationException(error);
    }

    private sealed record Failures(int Count, DateTimeOffset? LockedUntil);

    [LoggerMessage(3400, LogLevel.Information, "Admin UI: {User} logged in as {Role}")]
    private static partial void LoggedIn(ILogger logger, string user, string role);

    [LoggerMessage(3401, LogLevel.Warning, "Admin UI: a login as {User} failed")]
    private static partial void LoginFailed(ILogger logger, string user);

    [LoggerMessage(3402, LogLevel.Warning, "Admin UI: {User} is locked out for {Duration} after {Count} failed logins in a row")]
    private static partial void AccountLocked(ILogger logger, string user, int count, TimeSpan duration);

    [LoggerMessage(3403, LogLevel.Warning, "Admin UI: a login as {User} was refused: the account is locked out")]
    private static partial void LoginLocked(ILogger logger, string user);
}
