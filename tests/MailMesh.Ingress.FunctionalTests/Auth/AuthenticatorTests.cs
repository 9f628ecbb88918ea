using MailMesh.Ingress.Auth;
using MailMesh.ServiceDefaults.Security;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Ingress.FunctionalTests.Auth;

/// <summary>
/// The AUTH throttle at unit level, on a fake clock: the lockout is checked before any hashing, one network's attempts
/// run one at a time, IPv6 counts per /64, and no network can lock an account out for another.
/// </summary>
public sealed class AuthenticatorTests
{
    private const string User = "alice";
    private const string Password = "correct horse battery staple";
    private static readonly Lazy<string> Hash = new(() => PasswordHash.Create(Password, PasswordHash.MinIterations));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));

    private TimeSpan _maxDelay;

    private Authenticator Create(int maxFailures = 3, TimeSpan? delay = null, TimeSpan? maxDelay = null)
    {
        _maxDelay = maxDelay ?? delay ?? TimeSpan.Zero;
        return new Authenticator(Options.Create(new IngressAuthOptions
        {
            Users = [new AuthUser { Name = User, PasswordHash = Hash.Value }],
            MaxFailures = maxFailures,
            FailureWindow = TimeSpan.FromMinutes(15),
            LockoutDuration = TimeSpan.FromMinutes(15),
            FailureDelay = delay ?? TimeSpan.Zero,
            MaxFailureDelay = _maxDelay,
        }),
        _time);
    }

    private static Task<AuthOutcome> Start(Authenticator auth, string client, string password, string user = User) =>
        auth.VerifyAsync(client, user, password, CancellationToken.None);

    /// <summary>Runs one verification; if it waits out a penalty, moves the fake clock past the longest one.</summary>
    private async Task<AuthOutcome> VerifyAsync(Authenticator auth, string client, string password, string user = User)
    {
        var attempt = Start(auth, client, password, user);
        if (!attempt.IsCompleted)
        {
            _time.Advance(_maxDelay);
        }

        return await attempt;
    }

    [Fact]
    public async Task A_locked_out_network_is_answered_without_hashing()
    {
        var auth = Create(maxFailures: 3);
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "192.0.2.7", "wrong1"));
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "192.0.2.7", "wrong2"));
        Assert.Equal(AuthOutcome.LockedOut, await VerifyAsync(auth, "192.0.2.7", "wrong3"));
        Assert.Equal(3, auth.Verifications);

        Assert.True(auth.IsLockedOut("192.0.2.7"));
        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(AuthOutcome.LockedOut, await Start(auth, "192.0.2.7", Password));
        }

        Assert.Equal(3, auth.Verifications);
    }

    [Fact]
    public async Task Parallel_guesses_from_one_network_hash_one_at_a_time_and_stop_at_the_lockout()
    {
        var auth = Create(maxFailures: 3);
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            Task.Run(() => auth.VerifyAsync("198.51.100.9", User, "guess" + i, CancellationToken.None))));

        Assert.Equal(3, auth.Verifications);
        Assert.Equal(2, outcomes.Count(o => o == AuthOutcome.Failed));
        Assert.Equal(18, outcomes.Count(o => o == AuthOutcome.LockedOut));
    }

    [Fact]
    public async Task The_penalty_is_waited_out_before_the_password_is_hashed()
    {
        var auth = Create(maxFailures: 10, delay: TimeSpan.FromSeconds(2), maxDelay: TimeSpan.FromSeconds(16));
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "192.0.2.7", "wrong"));
        Assert.Equal(1, auth.Verifications);

        // One recent failure: the next attempt waits 2 s, and nothing is hashed while it waits.
        var attempt = Start(auth, "192.0.2.7", Password);
        _time.Advance(TimeSpan.FromSeconds(1.9));
        Assert.False(attempt.IsCompleted);
        Assert.Equal(1, auth.Verifications);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(AuthOutcome.Succeeded, await attempt);
        Assert.Equal(2, auth.Verifications);

        // Success clears the penalty.
        var next = Start(auth, "192.0.2.7", Password);
        Assert.True(next.IsCompleted);
        Assert.Equal(AuthOutcome.Succeeded, await next);
    }

    [Fact]
    public async Task IPv6_clients_are_counted_per_64()
    {
        var auth = Create(maxFailures: 3);
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "2001:db8:1:2::1", "wrong"));
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "2001:db8:1:2::2", "wrong"));
        Assert.Equal(AuthOutcome.LockedOut, await VerifyAsync(auth, "2001:db8:1:2:ffff:ffff:ffff:fffe", "wrong"));

        Assert.True(auth.IsLockedOut("2001:db8:1:2:1234::99"));
        Assert.Equal(AuthOutcome.LockedOut, await VerifyAsync(auth, "2001:db8:1:2:abcd::1", Password));
        Assert.False(auth.IsLockedOut("2001:db8:1:3::1"));
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(auth, "2001:db8:1:3::1", Password));
    }

    [Fact]
    public async Task IPv4_mapped_addresses_count_as_the_IPv4_address()
    {
        var auth = Create(maxFailures: 2);
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "::ffff:192.0.2.7", "wrong"));
        Assert.Equal(AuthOutcome.LockedOut, await VerifyAsync(auth, "192.0.2.7", "wrong"));
        Assert.True(auth.IsLockedOut("::ffff:192.0.2.7"));
    }

    [Fact]
    public async Task One_network_cannot_lock_an_account_out_for_another()
    {
        var auth = Create(maxFailures: 3, delay: TimeSpan.FromSeconds(1), maxDelay: TimeSpan.FromSeconds(16));
        for (var i = 0; i < 3; i++)
        {
            await VerifyAsync(auth, "203.0.113.66", "guess" + i);
        }

        Assert.True(auth.IsLockedOut("203.0.113.66"));

        // The owner, elsewhere, is throttled by the failures against the account (it waits before its password is
        // checked) but gets in.
        Assert.False(auth.IsLockedOut("192.0.2.10"));
        var owner = Start(auth, "192.0.2.10", Password);
        Assert.False(owner.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(AuthOutcome.Succeeded, await owner);

        // The attacker's network stays locked out.
        Assert.Equal(AuthOutcome.LockedOut, await Start(auth, "203.0.113.66", Password));
    }

    [Fact]
    public async Task Many_networks_guessing_one_account_are_slowed_but_never_lock_it()
    {
        var auth = Create(maxFailures: 3, delay: TimeSpan.FromSeconds(1), maxDelay: TimeSpan.FromSeconds(8));
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, $"198.51.100.{i + 1}", "guess" + i));
        }

        // Thirty failures against the account: every attempt at it waits the capped penalty first, none is refused.
        var attempt = Start(auth, "192.0.2.200", Password);
        _time.Advance(TimeSpan.FromSeconds(7));
        Assert.False(attempt.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(AuthOutcome.Succeeded, await attempt);
    }

    [Fact]
    public async Task The_lockout_ends_after_its_duration()
    {
        var auth = Create(maxFailures: 2);
        await VerifyAsync(auth, "192.0.2.7", "wrong");
        Assert.Equal(AuthOutcome.LockedOut, await VerifyAsync(auth, "192.0.2.7", "wrong"));

        _time.Advance(TimeSpan.FromMinutes(15) - TimeSpan.FromSeconds(1));
        Assert.True(auth.IsLockedOut("192.0.2.7"));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(auth.IsLockedOut("192.0.2.7"));
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(auth, "192.0.2.7", Password));
    }

    [Fact]
    public async Task An_unknown_account_costs_a_hash_like_a_known_one()
    {
        var auth = Create();
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "192.0.2.7", Password, user: "nobody"));
        Assert.Equal(1, auth.Verifications);
    }
    [Fact]
    public async Task Names_clients_make_up_do_not_grow_the_account_table()
    {
        var auth = Create(maxFailures: 3);
        var names = Authenticator.UnknownAccountBuckets + 100;
        for (var i = 0; i < names; i++)
        {
            Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, $"2001:db8:{i:x}::1", "guess", user: "made-up-" + i));
        }

        Assert.Equal(names, auth.Verifications);
        Assert.InRange(auth.TrackedAccounts, 1, Authenticator.UnknownAccountBuckets);
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(auth, "192.0.2.7", Password));
    }

    [Fact]
    public async Task A_table_of_recent_failures_is_not_rescanned_on_every_failure()
    {
        var auth = new Authenticator(Options.Create(new IngressAuthOptions
        {
            Users = [new AuthUser { Name = User, PasswordHash = Hash.Value }],
            FailureDelay = TimeSpan.Zero,
            MaxFailureDelay = TimeSpan.Zero,
        }),
        _time,
        pruneThreshold: 8);

        // 64 networks each fail once: nothing is idle, so each scan finds nothing and the next waits for twice the size.
        for (var i = 0; i < 64; i++)
        {
            Assert.Equal(AuthOutcome.Failed, await auth.VerifyAsync($"198.51.100.{i + 1}", "x" + i, "guess", CancellationToken.None));
        }

        Assert.Equal(64, auth.TrackedNetworks);
        Assert.InRange(auth.PruneScans, 1, 4);

        // Once the window has passed, the next scan drops the idle records.
        _time.Advance(TimeSpan.FromMinutes(16));
        for (var i = 0; i < 64; i++)
        {
            await auth.VerifyAsync($"203.0.113.{i + 1}", "x" + i, "guess", CancellationToken.None);
        }

        Assert.True(auth.TrackedNetworks < 128, $"{auth.TrackedNetworks} networks tracked");
    }
    [Fact]
    public async Task Logging_in_to_one_account_does_not_reset_the_lockout_of_guesses_at_others()
    {
        var auth = Create(maxFailures: 3, delay: TimeSpan.FromSeconds(1), maxDelay: TimeSpan.FromSeconds(8));
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "192.0.2.7", "guess1", user: "bob"));
        Assert.Equal(AuthOutcome.Failed, await VerifyAsync(auth, "192.0.2.7", "guess2", user: "bob"));

        // The client's own account: succeeds, and the next attempt waits no penalty...
        Assert.Equal(AuthOutcome.Succeeded, await VerifyAsync(auth, "192.0.2.7", Password));
        Assert.True(Start(auth, "192.0.2.7", Password).IsCompleted);

        // ...but the guesses still count: the third in the window locks the network out.
        Assert.Equal(AuthOutcome.LockedOut, await VerifyAsync(auth, "192.0.2.7", "guess3", user: "bob"));
        Assert.True(auth.IsLockedOut("192.0.2.7"));
    }
}
