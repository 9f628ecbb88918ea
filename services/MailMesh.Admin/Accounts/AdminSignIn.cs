using System.Security.Claims;
using System.Text;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
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

    /// <summary>The store of counts and lockouts cannot be reached: refused (a lockout cannot be checked).</summary>
    Unavailable,
}

/// <summary>
/// Checks admin UI logins against Admin:Users: PBKDF2 in constant time, the same work for an unknown name as for a
/// known one, and a lockout after Admin:Ui:MaxFailedLogins failures in a row for Admin:Ui:LockoutDuration. The counts
/// and lockouts are in the store (<see cref="IAdminLoginStore"/>: PostgreSQL, shared by every UI replica, or
/// Standalone's SQLite), so failures made on any replica add up and a lockout holds on all of them and across restarts.
/// </summary>
internal sealed partial class AdminSignIn(
    IOptionsMonitor<AdminAccountsOptions> accounts,
    IOptionsMonitor<AdminUiOptions> options,
    IAdminLoginStore store,
    TimeProvider time,
    ILogger<AdminSignIn> logger)
{
    /// <summary>How often this process deletes counts older than <see cref="AdminLogins.ForgetAfter"/>.</summary>
    internal static readonly TimeSpan PruneInterval = TimeSpan.FromHours(1);

    // Verified when the name is unknown, so the time taken does not tell which names exist.
    private static readonly PasswordHash.Parsed Decoy = CreateDecoy();

    private long _nextPruneTicks;

    /// <summary>
    /// Checks <paramref name="name"/> and <paramref name="password"/>; on success the principal to sign in. When the store
    /// cannot be reached the login is refused (<see cref="SignInResult.Unavailable"/>): a lockout must not be skipped.
    /// </summary>
    public async Task<(SignInResult Result, ClaimsPrincipal? Principal)> CheckAsync(string? name, string? password, CancellationToken cancellationToken)
    {
        try
        {
            return await CheckCoreAsync(name, password, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            StoreUnavailable(logger, e.Message);
            return (SignInResult.Unavailable, null);
        }
    }

    private async Task<(SignInResult Result, ClaimsPrincipal? Principal)> CheckCoreAsync(string? name, string? password, CancellationToken cancellationToken)
    {
        name = (name ?? string.Empty).Trim();
        var now = time.GetUtcNow();
        var settings = options.CurrentValue;
        if (name.Length is 0 or > 64)
        {
            return (SignInResult.Failed, null);
        }

        // The attempt is counted before its password is checked, in one atomic statement, so guesses made at once on any
        // number of replicas get at most MaxFailedLogins checks before the lockout: an attempt past the limit is refused
        // unchecked. A success clears the count. Counted whatever the name, so a lockout does not tell which names exist.
        await PruneIfDueAsync(now, cancellationToken);
        var attempt = await store.RecordFailureAsync(name, now, settings.MaxFailedLogins, settings.LockoutDuration, cancellationToken);
        if (attempt.Count > settings.MaxFailedLogins && attempt.LockedUntil is not null)
        {
            LoginLocked(logger, name);
            return (SignInResult.LockedOut, null);
        }

        var user = accounts.CurrentValue.Users.FirstOrDefault(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));
        var hash = user is not null && PasswordHash.TryParse(user.PasswordHash, out var parsed, out _) ? parsed : Decoy;
        var matches = hash.Verify(Encoding.UTF8.GetBytes(password ?? string.Empty)) && user is not null;
        if (!matches || !AdminRoles.TryParse(user!.Role, out var role))
        {
            if (attempt.LockedUntil is not null)
            {
                AccountLocked(logger, name, attempt.Count, settings.LockoutDuration);
            }
            else
            {
                LoginFailed(logger, name);
            }

            return (SignInResult.Failed, null);
        }

        await store.ClearFailuresAsync(name, cancellationToken);
        var identity = new ClaimsIdentity(AdminUiExtensions.CookieScheme, ClaimTypes.Name, ClaimTypes.Role);
        identity.AddClaim(new Claim(ClaimTypes.Name, user.Name!));
        foreach (var granted in AdminRoles.Granted(role))
        {
            identity.AddClaim(new Claim(ClaimTypes.Role, granted));
        }

        LoggedIn(logger, user.Name!, role);
        return (SignInResult.Success, new ClaimsPrincipal(identity));
    }

    /// <summary>Bounded storage whatever names are tried: at most once an hour, deletes counts a day old (never a lockout in force).</summary>
    private async Task PruneIfDueAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var due = Interlocked.Read(ref _nextPruneTicks);
        if (now.UtcTicks < due || Interlocked.CompareExchange(ref _nextPruneTicks, (now + PruneInterval).UtcTicks, due) != due)
        {
            return;
        }

        await store.PruneFailuresAsync(now, cancellationToken);
    }

    private static PasswordHash.Parsed CreateDecoy()
    {
        return PasswordHash.TryParse(PasswordHash.Create(Guid.NewGuid().ToString()), out var parsed, out var error)
            ? parsed
            : throw new InvalidOperationException(error);
    }

    [LoggerMessage(3400, LogLevel.Information, "Admin UI: {User} logged in as {Role}")]
    private static partial void LoggedIn(ILogger logger, string user, string role);

    [LoggerMessage(3401, LogLevel.Warning, "Admin UI: a login as {User} failed")]
    private static partial void LoginFailed(ILogger logger, string user);

    [LoggerMessage(3402, LogLevel.Warning, "Admin UI: {User} is locked out for {Duration} after {Count} failed logins in a row")]
    private static partial void AccountLocked(ILogger logger, string user, int count, TimeSpan duration);

    [LoggerMessage(3403, LogLevel.Warning, "Admin UI: a login as {User} was refused: the account is locked out")]
    private static partial void LoginLocked(ILogger logger, string user);

    [LoggerMessage(3404, LogLevel.Warning, "Admin UI: a login was refused: the store of failed logins cannot be reached ({Error})")]
    private static partial void StoreUnavailable(ILogger logger, string error);
}
