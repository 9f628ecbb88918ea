using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace MailMesh.Storage;

/// <summary>An account's failed logins after one more was counted.</summary>
/// <param name="Count">Failures in a row (since the last success, the end of a lockout, or a day without failures).</param>
/// <param name="LockedUntil">When the lockout ends; null while the account is not locked.</param>
public readonly record struct AdminLoginFailures(int Count, DateTimeOffset? LockedUntil);

/// <summary>
/// The admin UI's failed-login counts and lockouts (issue 12), shared by every UI replica (PostgreSQL) or kept by
/// Standalone's one process (SQLite). Names are compared without regard to case. Counting is one atomic statement, so
/// replicas counting at once never lose a failure: the account locks after the limit in total, wherever they were made.
/// </summary>
public interface IAdminLoginStore
{
    /// <summary>When the lockout of <paramref name="name"/> ends; null when it is not locked at <paramref name="now"/>.</summary>
    Task<DateTimeOffset?> GetLockedUntilAsync(string name, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Counts one login attempt of <paramref name="name"/> at <paramref name="now"/> (the UI counts each attempt before it
    /// checks the password, and clears the count on success). The count starts again at 1 when a
    /// lockout has ended or the last failure is older than <see cref="AdminLogins.ForgetAfter"/>; when it reaches
    /// <paramref name="maxFailures"/> the account is locked until <paramref name="now"/> + <paramref name="lockout"/> (a
    /// lockout in force is never shortened nor extended).
    /// </summary>
    Task<AdminLoginFailures> RecordFailureAsync(string name, DateTimeOffset now, int maxFailures, TimeSpan lockout, CancellationToken cancellationToken);

    /// <summary>Forgets the failures of <paramref name="name"/> (after a successful login).</summary>
    Task ClearFailuresAsync(string name, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes counts whose last failure is older than <see cref="AdminLogins.ForgetAfter"/> and that hold no lockout in
    /// force, so names tried by a guesser do not pile up; returns how many.
    /// </summary>
    Task<int> PruneFailuresAsync(DateTimeOffset now, CancellationToken cancellationToken);
}

/// <summary>
/// The admin UI's ASP.NET Core Data Protection key ring (an <see cref="IXmlRepository"/>), which protects its session
/// cookie and antiforgery tokens: in PostgreSQL every UI replica reads the same keys, so a cookie made by one is
/// accepted by all, and keys outlive restarts (in SQLite, Standalone's sessions survive a restart).
/// </summary>
public interface IAdminUiKeyStore : IXmlRepository
{
    /// <summary>
    /// Holds a lock shared by every replica until disposed (PostgreSQL: a transaction-scoped advisory lock on a connection
    /// of its own; SQLite, one process: nothing). Replicas starting together load or make the first key under it, so
    /// that they agree on one key instead of each making its own.
    /// </summary>
    Task<IAsyncDisposable> LockAsync(CancellationToken cancellationToken);
}

/// <summary>The rules and row readers both stores of the admin UI share.</summary>
public static class AdminLogins
{
    /// <summary>A count whose last failure is this old starts again (and may be pruned).</summary>
    public static readonly TimeSpan ForgetAfter = TimeSpan.FromDays(1);

    /// <summary>The key a name is counted under: lower case, invariant culture.</summary>
    internal static string Key(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return name.Trim().ToLowerInvariant();
    }

    internal static void CheckLimits(int maxFailures, TimeSpan lockout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFailures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lockout, TimeSpan.Zero);
    }

    /// <summary>The key elements of a reader whose first column is the stored XML, in the order read.</summary>
    internal static IReadOnlyCollection<XElement> ReadElements(System.Data.Common.DbDataReader reader)
    {
        var elements = new List<XElement>();
        while (reader.Read())
        {
            elements.Add(XElement.Parse(reader.GetString(0)));
        }

        return elements;
    }
}
