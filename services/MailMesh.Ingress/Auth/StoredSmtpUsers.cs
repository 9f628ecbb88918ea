using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.Auth;

/// <summary>
/// The SMTP AUTH users made through the admin API (<see cref="ISmtpUserStore"/>), as this Ingress replica knows them
/// (<see cref="RefreshedFromStore"/>: re-read every <c>Admin:KeyRefreshInterval</c>, like the stored API keys), so a
/// user made, disabled, enabled or given a new password on one replica takes effect on every other within that
/// interval, without a database round trip per AUTH. Configured users (Ingress:Auth:Users) never depend on it.
/// </summary>
internal sealed partial class StoredSmtpUsers(
    IServiceProvider services,
    IOptionsMonitor<AdminApiOptions> options,
    TimeProvider time,
    ILogger<StoredSmtpUsers> logger) : RefreshedFromStore(options, time)
{
    private volatile Snapshot _snapshot = new([], new Dictionary<string, StoredSmtpUser>(StringComparer.OrdinalIgnoreCase), 0);

    /// <summary>Every stored user (enabled and disabled); a new list object after each change.</summary>
    public IReadOnlyList<StoredSmtpUser> Current => _snapshot.Users;

    /// <summary>True when any stored user is enabled (AUTH is then offered even with no configured user).</summary>
    public bool HasEnabled => _snapshot.EnabledCount > 0;

    /// <summary>The stored user named <paramref name="name"/>, enabled or not (names compare without regard to case).</summary>
    public StoredSmtpUser? Find(string name) => _snapshot.ByName.GetValueOrDefault(name);

    /// <summary>The enabled stored user named <paramref name="name"/>.</summary>
    public StoredSmtpUser? FindEnabled(string name) => Find(name) is { Enabled: true } user ? user : null;

    /// <summary>Reads the store now (after this process changed it, so that it takes effect here at once).</summary>
    public override async Task RefreshAsync(CancellationToken cancellationToken)
    {
        if (services.GetService<ISmtpUserStore>() is not { } store)
        {
            return;
        }

        var users = await store.ListSmtpUsersAsync(cancellationToken);
        var current = _snapshot.Users;
        if (users.Count != current.Count || !users.SequenceEqual(current))
        {
            _snapshot = new Snapshot(users, users.ToDictionary(u => u.Name, StringComparer.OrdinalIgnoreCase), users.Count(u => u.Enabled));
        }
    }

    /// <inheritdoc />
    protected override void OnReadFailed(Exception exception) => RefreshFailed(logger, _snapshot.Users.Count, exception);

    /// <inheritdoc />
    protected override void OnReadRecovered() => Recovered(logger);

    [LoggerMessage(1060, LogLevel.Warning, "Could not read the stored SMTP users; the last list ({Count} users) stays in force until the store answers")]
    private static partial void RefreshFailed(ILogger logger, int count, Exception exception);

    [LoggerMessage(1061, LogLevel.Warning, "The stored SMTP users can be read again")]
    private static partial void Recovered(ILogger logger);

    private sealed record Snapshot(IReadOnlyList<StoredSmtpUser> Users, Dictionary<string, StoredSmtpUser> ByName, int EnabledCount);
}
