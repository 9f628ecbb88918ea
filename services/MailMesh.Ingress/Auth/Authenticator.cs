using System.Text;
using MailMesh.ServiceDefaults.Security;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.Auth;

/// <summary>
/// Verifies AUTH credentials against the configured accounts (Ingress:Auth:Users), then the enabled accounts made through
/// the admin API (<see cref="StoredSmtpUsers"/>; a configured account wins a name clash), behind the shared brute-force throttle
/// (<see cref="AuthThrottle"/>: per client network lockout, per account slow-down, penalty before hashing). An unknown
/// account costs the same PBKDF2 work and delays as a known one, so timing does not reveal which names exist.
/// </summary>
internal sealed class Authenticator
{
    private const int DefaultPruneThreshold = 10_000;

    /// <summary>How many shared throttle records the names of unknown accounts are hashed into.</summary>
    internal const int UnknownAccountBuckets = AuthThrottle.UnknownAccountBuckets;

    private readonly AuthThrottle _throttle;
    private readonly Dictionary<string, PasswordHash.Parsed> _users;
    private readonly PasswordHash.Parsed _dummy;
    private readonly StoredSmtpUsers? _stored;
    private long _verifications;

    public Authenticator(IOptions<IngressAuthOptions> options, TimeProvider time, StoredSmtpUsers? stored = null)
        : this(options, time, DefaultPruneThreshold, stored)
    {
    }

    internal Authenticator(IOptions<IngressAuthOptions> options, TimeProvider time, int pruneThreshold, StoredSmtpUsers? stored = null)
    {
        _stored = stored;
        _throttle = new AuthThrottle(options.Value, time, pruneThreshold);
        _users = new Dictionary<string, PasswordHash.Parsed>(StringComparer.Ordinal);
        foreach (var user in options.Value.Users)
        {
            // Validated at start: every hash parses.
            if (PasswordHash.TryParse(user.PasswordHash, out var parsed, out _))
            {
                _users[user.Name] = parsed;
            }
        }

        // Stored users are hashed with the default iteration count: an unknown name costs at least as much as they do.
        var iterations = _users.Count > 0 ? _users.Values.Max(u => u.Iterations) : PasswordHash.MinIterations;
        if (stored is not null)
        {
            iterations = Math.Max(iterations, PasswordHash.DefaultIterations);
        }

        _dummy = PasswordHash.TryParse(PasswordHash.Create(Guid.NewGuid().ToString(), iterations), out var dummy, out _)
            ? dummy
            : throw new InvalidOperationException("The dummy password hash does not parse.");
    }

    /// <summary>True when any account is configured or stored and enabled (AUTH is advertised only then).</summary>
    public bool HasUsers => _users.Count > 0 || _stored?.HasEnabled == true;

    /// <summary>How many passwords were hashed (PBKDF2 runs): what the throttle saves, visible to tests.</summary>
    internal long Verifications => Interlocked.Read(ref _verifications);

    /// <summary>Throttle records held for accounts (configured accounts and unknown-name buckets), visible to tests.</summary>
    internal int TrackedAccounts => _throttle.TrackedAccounts;

    /// <summary>Throttle records held for client networks, visible to tests.</summary>
    internal int TrackedNetworks => _throttle.TrackedNetworks;

    /// <summary>How many times the network table was scanned for idle records, visible to tests.</summary>
    internal long PruneScans => _throttle.PruneScans;

    /// <summary>Checks the client network's lockout before an exchange starts.</summary>
    public bool IsLockedOut(string clientAddress) => _throttle.IsLockedOut(clientAddress);

    /// <summary>
    /// Verifies <paramref name="user"/> and <paramref name="password"/>: first the lockout, then the penalty delay
    /// (awaited on the TimeProvider), and only then the password hash.
    /// </summary>
    public Task<AuthOutcome> VerifyAsync(string clientAddress, string user, string password, CancellationToken cancellationToken)
    {
        var known = _users.TryGetValue(user, out var hash);
        if (!known && _stored?.FindEnabled(user) is { } made && PasswordHash.TryParse(made.PasswordHash, out var parsed, out _))
        {
            // A disabled or unknown stored user is not known: it costs the dummy hash and fails like a wrong password.
            known = true;
            hash = parsed;
        }

        return _throttle.VerifyAsync(clientAddress, user, known, () =>
        {
            Interlocked.Increment(ref _verifications);
            return (hash ?? _dummy).Verify(Encoding.UTF8.GetBytes(password)) && known;
        }, cancellationToken);
    }
}
