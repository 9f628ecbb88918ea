using System.Collections.Concurrent;
using System.Text;
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
/// Verifies AUTH credentials against the configured accounts and throttles guessing: each failure is answered after an
/// exponentially growing delay, and a client IP or an account with <see cref="IngressAuthOptions.MaxFailures"/>
/// failures in the window is locked out (454 4.7.0) for <see cref="IngressAuthOptions.LockoutDuration"/>. An unknown
/// account costs the same PBKDF2 work as a known one, so timing does not reveal which names exist.
/// </summary>
internal sealed class Authenticator
{
    private readonly IngressAuthOptions _options;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, PasswordHash.Parsed> _users;
    private readonly PasswordHash.Parsed _dummy;
    private readonly ConcurrentDictionary<string, FailureRecord> _failures = new(StringComparer.Ordinal);

    public Authenticator(IOptions<IngressAuthOptions> options, TimeProvider time)
    {
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

    /// <summary>Checks the client IP's lockout before an exchange starts.</summary>
    public bool IsLockedOut(string clientAddress) => IsLocked("ip:" + clientAddress);

    /// <summary>
    /// Verifies <paramref name="user"/> and <paramref name="password"/>. A failure is returned only after the back-off
    /// delay (awaited on the TimeProvider), so a client cannot guess faster than the throttle allows.
    /// </summary>
    public async Task<AuthOutcome> VerifyAsync(string clientAddress, string user, string password, CancellationToken cancellationToken)
    {
        var ipKey = "ip:" + clientAddress;
        var userKey = "user:" + user;
        if (IsLocked(ipKey) || IsLocked(userKey))
        {
            return AuthOutcome.LockedOut;
        }

        var bytes = Encoding.UTF8.GetBytes(password);
        var known = _users.TryGetValue(user, out var hash);
        var valid = (hash ?? _dummy).Verify(bytes) && known;
        if (valid)
        {
            _failures.TryRemove(ipKey, out _);
            _failures.TryRemove(userKey, out _);
            return AuthOutcome.Succeeded;
        }

        var count = Math.Max(RecordFailure(ipKey), RecordFailure(userKey));
        var delay = TimeSpan.FromTicks(Math.Min(_options.MaxFailureDelay.Ticks, _options.FailureDelay.Ticks * (1L << Math.Min(count - 1, 20))));
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _time, cancellationToken);
        }

        return count >= _options.MaxFailures ? AuthOutcome.LockedOut : AuthOutcome.Failed;
    }

    private bool IsLocked(string key)
    {
        if (!_failures.TryGetValue(key, out var record))
        {
            return false;
        }

        lock (record)
        {
            return record.LockedUntil > _time.GetUtcNow();
        }
    }

    private int RecordFailure(string key)
    {
        var now = _time.GetUtcNow();
        var record = _failures.GetOrAdd(key, static _ => new FailureRecord());
        lock (record)
        {
            if (now - record.WindowStart > _options.FailureWindow)
            {
                record.WindowStart = now;
                record.Count = 0;
            }

            record.Count++;
            if (record.Count >= _options.MaxFailures)
            {
                record.LockedUntil = now + _options.LockoutDuration;
            }

            PruneIfLarge(now);
            return record.Count;
        }
    }

    // Bound memory under a spray from many addresses: drop records whose window and lockout have passed.
    private void PruneIfLarge(DateTimeOffset now)
    {
        if (_failures.Count < 10_000)
        {
            return;
        }

        foreach (var (key, record) in _failures)
        {
            if (now - record.WindowStart > _options.FailureWindow && record.LockedUntil < now)
            {
                _failures.TryRemove(key, out _);
            }
        }
    }

    private sealed class FailureRecord
    {
        public DateTimeOffset WindowStart { get; set; } = DateTimeOffset.MinValue;

        public int Count { get; set; }

        public DateTimeOffset LockedUntil { get; set; } = DateTimeOffset.MinValue;
    }
}
