using System.Collections.Concurrent;
using System.Text;
using MailMesh.ServiceDefaults.Security;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.Auth;

/// <summary>The outcome of one AUTH exchange.</summary>
internal enum AuthOutcome
{
    Succeeded,
    Failed,
    LockedOut,
}

/// <summary>
/// Verifies AUTH credentials against the configured accounts and throttles guessing, in the manner of Dovecot's auth
/// penalty: the penalty is paid before the password is hashed, so guessing costs the guesser time, not the server CPU.
/// <list type="bullet">
/// <item>The unit is the client network (<see cref="ClientNetwork"/>: an IPv4 address or an IPv6 /64, as for the
/// connection limits). Its verifications run one at a time, so parallel connections cannot hash in parallel or slip
/// past the lockout together. After failures, each further attempt from it first waits
/// <see cref="IngressAuthOptions.FailureDelay"/> doubled per recent failure (capped at
/// <see cref="IngressAuthOptions.MaxFailureDelay"/>); after <see cref="IngressAuthOptions.MaxFailures"/> failures in
/// <see cref="IngressAuthOptions.FailureWindow"/> the network is locked out (454 4.7.0, no hashing at all) for
/// <see cref="IngressAuthOptions.LockoutDuration"/>.</item>
/// <item>An account is never locked: one network guessing an account's password must not lock its owner out. Failures
/// against an account from every network together only slow each attempt at that account (the same exponential delay,
/// same cap), which bounds a distributed guess at one account; the owner, from another network, still gets in.</item>
/// </list>
/// An unknown account costs the same PBKDF2 work and delays as a known one, so timing does not reveal which names exist.
/// <para>Memory is bounded: failures against unknown names are counted in <see cref="UnknownAccountBuckets"/> shared
/// records (a name picks one by its hash), so the account table holds at most the configured accounts and the buckets,
/// whatever names clients send; idle network records are pruned, each scan doubling the size the next one waits for,
/// so a table full of recent failures is not rescanned on every failure.</para>
/// </summary>
internal sealed class Authenticator
{
    private const int DefaultPruneThreshold = 10_000;

    /// <summary>How many shared throttle records the names of unknown accounts are hashed into.</summary>
    internal const int UnknownAccountBuckets = 256;

    private readonly int _pruneThreshold;
    private int _nextPrune;
    private long _pruneScans;
    private readonly IngressAuthOptions _options;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, PasswordHash.Parsed> _users;
    private readonly PasswordHash.Parsed _dummy;
    private readonly ConcurrentDictionary<string, FailureRecord> _networks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, FailureRecord> _accounts = new(StringComparer.Ordinal);
    private long _verifications;

    public Authenticator(IOptions<IngressAuthOptions> options, TimeProvider time)
        : this(options, time, DefaultPruneThreshold)
    {
    }

    internal Authenticator(IOptions<IngressAuthOptions> options, TimeProvider time, int pruneThreshold)
    {
        _pruneThreshold = _nextPrune = pruneThreshold;
        _options = options.Value;
        _time = time;
        _users = new Dictionary<string, PasswordHash.Parsed>(StringComparer.Ordinal);
        foreach (var user in _options.Users)
        {
            // Validated at start: every hash parses.
            if (PasswordHash.TryParse(user.PasswordHash, out var parsed, out _))
            {
                _users[user.Name] = parsed;
            }
        }

        var iterations = _users.Count > 0 ? _users.Values.Max(u => u.Iterations) : PasswordHash.MinIterations;
        _dummy = PasswordHash.TryParse(PasswordHash.Create(Guid.NewGuid().ToString(), iterations), out var dummy, out _)
            ? dummy
            : throw new InvalidOperationException("The dummy password hash does not parse.");
    }

    /// <summary>True when any account is configured (AUTH is advertised only then).</summary>
    public bool HasUsers => _users.Count > 0;

    /// <summary>How many passwords were hashed (PBKDF2 runs): what the throttle saves, visible to tests.</summary>
    internal long Verifications => Interlocked.Read(ref _verifications);

    /// <summary>Throttle records held for accounts (configured accounts and unknown-name buckets), visible to tests.</summary>
    internal int TrackedAccounts => _accounts.Count;

    /// <summary>Throttle records held for client networks, visible to tests.</summary>
    internal int TrackedNetworks => _networks.Count;

    /// <summary>How many times the network table was scanned for idle records, visible to tests.</summary>
    internal long PruneScans => Interlocked.Read(ref _pruneScans);

    /// <summary>Checks the client network's lockout before an exchange starts.</summary>
    public bool IsLockedOut(string clientAddress) =>
        _networks.TryGetValue(ClientNetwork.Key(clientAddress), out var record) && record.IsLocked(_time.GetUtcNow());

    /// <summary>
    /// Verifies <paramref name="user"/> and <paramref name="password"/>: first the lockout, then the penalty delay
    /// (awaited on the TimeProvider), and only then the password hash.
    /// </summary>
    public async Task<AuthOutcome> VerifyAsync(string clientAddress, string user, string password, CancellationToken cancellationToken)
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

            var account = _accounts.GetOrAdd(AccountKey(user), static _ => new FailureRecord());
            var now = _time.GetUtcNow();
            var delay = Penalty(Math.Max(network.RecentFailures(now, _options.FailureWindow), account.RecentFailures(now, _options.FailureWindow)));
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, _time, cancellationToken);
            }

            var bytes = Encoding.UTF8.GetBytes(password);
            Interlocked.Increment(ref _verifications);
            var known = _users.TryGetValue(user, out var hash);
            var valid = (hash ?? _dummy).Verify(bytes) && known;
            if (valid)
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
    /// The throttle record of an account: its own for a configured account, else one of the shared buckets for unknown
    /// names (a NUL cannot be in a configured name, so no bucket key is one). Clients choose the names they send; a
    /// record per name would let them grow the table without limit.
    /// </summary>
    private string AccountKey(string user) =>
        _users.ContainsKey(user)
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
