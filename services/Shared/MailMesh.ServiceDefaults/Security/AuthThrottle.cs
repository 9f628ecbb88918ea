using System.Collections.Concurrent;

namespace MailMesh.ServiceDefaults.Security;

/// <summary>The outcome of one authentication attempt.</summary>
public enum AuthOutcome
{
    Succeeded,
    Failed,
    LockedOut,
}

/// <summary>The settings of an <see cref="AuthThrottle"/> ("Ingress:Auth", "Mailbox:Auth": the same keys).</summary>
public interface IAuthThrottleSettings
{
    /// <summary>Failures from one client network within <see cref="FailureWindow"/> that lock that network out.</summary>
    int MaxFailures { get; }

    /// <summary>The window failures are counted in.</summary>
    TimeSpan FailureWindow { get; }

    /// <summary>How long a locked-out client network is refused without its password being checked.</summary>
    TimeSpan LockoutDuration { get; }

    /// <summary>The wait before checking a password after a recent failure, doubled with each further failure.</summary>
    TimeSpan FailureDelay { get; }

    /// <summary>The cap of the exponential failure delay.</summary>
    TimeSpan MaxFailureDelay { get; }

    /// <summary>The checks of these settings, each message starting with the key under <paramref name="section"/>.</summary>
    static IEnumerable<string> Validate(IAuthThrottleSettings settings, string section)
    {
        var p = section + ":";
        if (settings.MaxFailures < 1)
        {
            yield return p + "MaxFailures: must be at least 1";
        }

        foreach (var (name, value) in new[] { ("FailureWindow", settings.FailureWindow), ("LockoutDuration", settings.LockoutDuration) })
        {
            if (value <= TimeSpan.Zero || value > TimeSpan.FromDays(1))
            {
                yield return $"{p}{name}: must be positive and at most 1 day";
            }
        }

        if (settings.FailureDelay < TimeSpan.Zero || settings.MaxFailureDelay < settings.FailureDelay || settings.MaxFailureDelay > TimeSpan.FromMinutes(1))
        {
            yield return p + "MaxFailureDelay: must be at least FailureDelay (which must not be negative) and at most 1 minute";
        }
    }
}

/// <summary>
/// The brute-force throttle of every password login (SMTP AUTH, POP3, IMAP), in the manner of Dovecot's auth penalty:
/// the penalty is paid before the password is hashed, so guessing costs the guesser time, not the server CPU.
/// <list type="bullet">
/// <item>The unit is the client network (<see cref="ClientNetwork"/>: an IPv4 address or an IPv6 /64). Its verifications
/// run one at a time, so parallel connections cannot hash in parallel or slip past the lockout together. After
/// failures, each further attempt from it first waits <see cref="IAuthThrottleSettings.FailureDelay"/> doubled per
/// recent failure (capped at <see cref="IAuthThrottleSettings.MaxFailureDelay"/>); after
/// <see cref="IAuthThrottleSettings.MaxFailures"/> failures in the window the network is locked out (no hashing at all)
/// for <see cref="IAuthThrottleSettings.LockoutDuration"/>.</item>
/// <item>An account is never locked: one network guessing an account's password must not lock its owner out. Failures
/// against an account from every network together only slow each attempt at that account.</item>
/// </list>
/// <para>Memory is bounded: failures against unknown names are counted in <see cref="UnknownAccountBuckets"/> shared
/// records (a name picks one by its hash), so the account table holds at most the known accounts seen and the buckets,
/// whatever names clients send; idle network records are pruned, each scan doubling the size the next one waits for,
/// so a table full of recent failures is not rescanned on every failure.</para>
/// </summary>
public sealed class AuthThrottle
{
    /// <summary>How many shared throttle records the names of unknown accounts are hashed into.</summary>
    public const int UnknownAccountBuckets = 256;

    private readonly int _pruneThreshold;
    private int _nextPrune;
    private long _pruneScans;
    private readonly IAuthThrottleSettings _options;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, FailureRecord> _networks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, FailureRecord> _accounts = new(StringComparer.Ordinal);

    public AuthThrottle(IAuthThrottleSettings settings, TimeProvider time, int pruneThreshold = 10_000)
    {
        _pruneThreshold = _nextPrune = pruneThreshold;
        _options = settings;
        _time = time;
    }

    /// <summary>Throttle records held for accounts (known accounts and unknown-name buckets).</summary>
    public int TrackedAccounts => _accounts.Count;

    /// <summary>Throttle records held for client networks.</summary>
    public int TrackedNetworks => _networks.Count;

    /// <summary>How many times the network table was scanned for idle records.</summary>
    public long PruneScans => Interlocked.Read(ref _pruneScans);

    /// <summary>Checks the client network's lockout before an exchange starts.</summary>
    public bool IsLockedOut(string clientAddress) =>
        _networks.TryGetValue(ClientNetwork.Key(clientAddress), out var record) && record.IsLocked(_time.GetUtcNow());

    /// <summary>
    /// Runs <paramref name="verify"/> (the password hash check) for <paramref name="user"/> from
    /// <paramref name="clientAddress"/>: first the lockout, then the penalty delay (awaited on the TimeProvider), and
    /// only then the check. <paramref name="knownAccount"/> says whether the name is a real account (its own record;
    /// unknown names share buckets). An unknown account must cost the caller the same hashing as a known one.
    /// </summary>
    public async Task<AuthOutcome> VerifyAsync(string clientAddress, string user, bool knownAccount, Func<bool> verify, CancellationToken cancellationToken)
    {
        var key = ClientNetwork.Key(clientAddress);
        FailureRecord network;
        while (true)
        {
            network = _networks.GetOrAdd(key, static _ => new FailureRecord());
            if (network.IsLocked(_time.GetUtcNow()))
            {
                return AuthOutcome.LockedOut;
            }

            await network.Gate.WaitAsync(cancellationToken);

            // Pruned between GetOrAdd and the gate: a newer record may hold this network's count and gate; use that one.
            if (_networks.TryGetValue(key, out var current) && ReferenceEquals(current, network))
            {
                break;
            }

            network.Gate.Release();
        }

        try
        {
            // Checked again under the gate: an attempt that queued behind the one that locked the network must not hash.
            if (network.IsLocked(_time.GetUtcNow()))
            {
                return AuthOutcome.LockedOut;
            }

            var account = _accounts.GetOrAdd(AccountKey(user, knownAccount), static _ => new FailureRecord());
            var now = _time.GetUtcNow();
            var delay = Penalty(Math.Max(network.RecentFailures(now, _options.FailureWindow), account.RecentFailures(now, _options.FailureWindow)));
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, _time, cancellationToken);
            }

            if (verify())
            {
                network.Reset();
                account.Reset();
                return AuthOutcome.Succeeded;
            }

            now = _time.GetUtcNow();
            account.RecordFailure(now, _options.FailureWindow, lockAt: int.MaxValue, _options.LockoutDuration);
            var locked = network.RecordFailure(now, _options.FailureWindow, _options.MaxFailures, _options.LockoutDuration);
            Prune(now);
            return locked ? AuthOutcome.LockedOut : AuthOutcome.Failed;
        }
        finally
        {
            network.Gate.Release();
        }
    }

    /// <summary>The wait before hashing after <paramref name="failures"/> recent failures: none, then FailureDelay × 2^(n-1), capped.</summary>
    private TimeSpan Penalty(int failures) =>
        failures <= 0
            ? TimeSpan.Zero
            : TimeSpan.FromTicks(Math.Min(_options.MaxFailureDelay.Ticks, _options.FailureDelay.Ticks * (1L << Math.Min(failures - 1, 20))));

    /// <summary>
    /// The throttle record of an account: its own for a known account, else one of the shared buckets for unknown
    /// names (a NUL cannot be in an account name, so no bucket key is one). Clients choose the names they send; a
    /// record per name would let them grow the table without limit.
    /// </summary>
    private static string AccountKey(string user, bool known) =>
        known
            ? user
            : "\0unknown:" + ((uint)StringComparer.Ordinal.GetHashCode(user) % UnknownAccountBuckets).ToString(System.Globalization.CultureInfo.InvariantCulture);

    // Bound memory under a spray from many networks: drop idle records whose window and lockout have passed. A scan
    // that leaves the table large waits for it to double before the next, so the cost per failure stays constant.
    private void Prune(DateTimeOffset now)
    {
        var next = Volatile.Read(ref _nextPrune);
        if (_networks.Count < next || Interlocked.CompareExchange(ref _nextPrune, int.MaxValue, next) != next)
        {
            return;
        }

        Interlocked.Increment(ref _pruneScans);
        foreach (var (key, record) in _networks)
        {
            if (record.IsIdle(now, _options.FailureWindow))
            {
                _networks.TryRemove(new KeyValuePair<string, FailureRecord>(key, record));
            }
        }

        Volatile.Write(ref _nextPrune, (int)Math.Min(int.MaxValue / 2, Math.Max(_pruneThreshold, 2L * _networks.Count)));
    }

    private sealed class FailureRecord
    {
        private readonly Lock _lock = new();
        private DateTimeOffset _windowStart = DateTimeOffset.MinValue;
        private int _count;
        private int _penalty;
        private DateTimeOffset _lockedUntil = DateTimeOffset.MinValue;

        /// <summary>One verification at a time per client network.</summary>
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public bool IsLocked(DateTimeOffset now)
        {
            lock (_lock)
            {
                return _lockedUntil > now;
            }
        }

        public int RecentFailures(DateTimeOffset now, TimeSpan window)
        {
            lock (_lock)
            {
                return now - _windowStart > window ? 0 : _penalty;
            }
        }

        /// <summary>Counts a failure; true when it reaches <paramref name="lockAt"/> and so starts a lockout.</summary>
        public bool RecordFailure(DateTimeOffset now, TimeSpan window, int lockAt, TimeSpan lockout)
        {
            lock (_lock)
            {
                if (now - _windowStart > window)
                {
                    _windowStart = now;
                    _count = 0;
                    _penalty = 0;
                }

                _count++;
                _penalty++;
                if (_count < lockAt)
                {
                    return false;
                }

                _lockedUntil = now + lockout;
                return true;
            }
        }

        /// <summary>
        /// After a success: no more penalty delay, but the failures still count towards the lockout until their
        /// window passes. Clearing them would let a client that knows any one account's password guess at others
        /// without end, logging in to its own account before each lockout.
        /// </summary>
        public void Reset()
        {
            lock (_lock)
            {
                _penalty = 0;
            }
        }

        public bool IsIdle(DateTimeOffset now, TimeSpan window)
        {
            lock (_lock)
            {
                return now - _windowStart > window && _lockedUntil <= now && Gate.CurrentCount == 1;
            }
        }
    }
}
