using MailMesh.Ingress.Auth;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Ingress.FunctionalTests.Auth;

/// <summary>
/// SMTP users made through the admin API on two Ingress replicas sharing one store, on a fake clock: the replica that
/// disables a user refuses it at once, the other within Admin:KeyRefreshInterval; a disabled user costs the same hashing
/// as a wrong password; while the store cannot be read the last list stays in force.
/// </summary>
public sealed class StoredSmtpUsersTests : IAsyncLifetime
{
    private const string Password = "made-through-the-api";
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    private static readonly Lazy<string> Hash = new(() => PasswordHash.Create(Password, PasswordHash.MinIterations));

    private readonly CountingTimeProvider _time = new();
    private readonly InMemorySmtpUserStore _store = new();
    private readonly List<StoredSmtpUsers> _replicas = [];
    private ServiceProvider _services = null!;

    public async Task InitializeAsync()
    {
        await _store.AddSmtpUserAsync(new StoredSmtpUser { Name = "app", PasswordHash = Hash.Value, CreatedAt = _time.GetUtcNow(), CreatedBy = "ops" }, CancellationToken.None);
        var services = new ServiceCollection();
        services.AddSingleton<ISmtpUserStore>(_store);
        services.Configure<AdminApiOptions>(o => o.KeyRefreshInterval = Interval);
        _services = services.BuildServiceProvider();
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await replica.StopAsync(CancellationToken.None);
            replica.Dispose();
        }

        await _services.DisposeAsync();
    }

    private async Task<(StoredSmtpUsers Stored, Authenticator Auth)> StartReplicaAsync()
    {
        var stored = new StoredSmtpUsers(_services, _services.GetRequiredService<IOptionsMonitor<AdminApiOptions>>(), _time, NullLogger<StoredSmtpUsers>.Instance);
        _replicas.Add(stored);
        await stored.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => stored.Current.Count > 0);
        return (stored, new Authenticator(Options.Create(new IngressAuthOptions { FailureDelay = TimeSpan.Zero, MaxFailureDelay = TimeSpan.Zero }), _time, stored));
    }

    private static Task<AuthOutcome> VerifyAsync(Authenticator auth, string user, string password) =>
        auth.VerifyAsync("192.0.2.1", user, password, CancellationToken.None);

    [Fact]
    public async Task A_user_disabled_on_one_replica_is_refused_on_the_other_within_the_refresh_interval()
    {
        var (storedA, a) = await StartReplicaAsync();
        var (storedB, b) = await StartReplicaAsync();
        Assert.True(a.HasUsers);
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(a, "app", Password));
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(b, "APP", Password));

        // Replica A's admin API disables it and re-reads at once; B has not yet reached its next refresh.
        Assert.True(await _store.SetSmtpUserEnabledAsync("app", enabled: false, "ops", _time.GetUtcNow(), CancellationToken.None));
        await storedA.RefreshAsync(CancellationToken.None);
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(a, "app", Password));
        Assert.False(a.HasUsers);
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(b, "app", Password));

        // Both replicas wait out their interval on the fake clock: move it once, by exactly that.
        await WaitUntilAsync(() => _time.Timers >= 2);
        _time.Advance(Interval);
        await WaitUntilAsync(() => storedB.FindEnabled("app") is null);
        var hashed = b.Verifications;
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(b, "app", Password));
        Assert.Equal(hashed + 1, b.Verifications);
        Assert.NotNull(storedB.Find("app"));
    }

    [Fact]
    public async Task While_the_store_cannot_be_read_the_last_list_stays_in_force()
    {
        var (stored, auth) = await StartReplicaAsync();
        _store.Failing = true;
        var reads = _store.Reads;
        await WaitUntilAsync(() => _time.Timers >= 1);
        _time.Advance(Interval);
        await WaitUntilAsync(() => _store.Reads > reads);
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(auth, "app", Password));

        _store.Failing = false;
        await _store.AddSmtpUserAsync(new StoredSmtpUser { Name = "second", PasswordHash = Hash.Value, CreatedAt = _time.GetUtcNow(), CreatedBy = "ops" }, CancellationToken.None);
        await WaitUntilAsync(() => _time.Timers >= 2);
        _time.Advance(Interval);
        await WaitUntilAsync(() => stored.FindEnabled("second") is not null);
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(auth, "second", Password));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }

    /// <summary>A fake clock that counts the timers made on it: a refresh loop waiting for its interval has made one.</summary>
    private sealed class CountingTimeProvider() : FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 7, 0, 0, TimeSpan.Zero))
    {
        private int _timers;

        public int Timers => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = base.CreateTimer(callback, state, dueTime, period);
            Interlocked.Increment(ref _timers);
            return timer;
        }
    }

    /// <summary>One shared store for both replicas (what PostgreSQL is in the distributed mode).</summary>
    private sealed class InMemorySmtpUserStore : ISmtpUserStore
    {
        private readonly Lock _gate = new();
        private readonly List<StoredSmtpUser> _users = [];
        private int _reads;

        public bool Failing { get; set; }

        public int Reads => Volatile.Read(ref _reads);

        public Task<IReadOnlyList<StoredSmtpUser>> ListSmtpUsersAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _reads);
            if (Failing)
            {
                throw new InvalidOperationException("store down");
            }

            lock (_gate)
            {
                return Task.FromResult<IReadOnlyList<StoredSmtpUser>>([.. _users]);
            }
        }

        public Task<bool> AddSmtpUserAsync(StoredSmtpUser user, CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                _users.Add(user);
                return Task.FromResult(true);
            }
        }

        public Task<bool> SetSmtpUserEnabledAsync(string name, bool enabled, string actor, DateTimeOffset at, CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                var i = _users.FindIndex(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));
                if (i < 0 || _users[i].Enabled == enabled)
                {
                    return Task.FromResult(false);
                }

                _users[i] = _users[i] with { DisabledAt = enabled ? null : at, DisabledBy = enabled ? null : actor };
                return Task.FromResult(true);
            }
        }

        public Task<bool> SetSmtpUserPasswordAsync(string name, string passwordHash, string actor, DateTimeOffset at, CancellationToken cancellationToken) =>
            Task.FromResult(false);
    }
}
