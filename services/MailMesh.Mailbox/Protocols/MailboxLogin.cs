using System.Text;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;

namespace MailMesh.Mailbox.Protocols;

/// <summary>
/// Password logins for POP3 and IMAP against the mail store's accounts, behind the same brute-force throttle as SMTP
/// AUTH (<see cref="AuthThrottle"/>, settings "Mailbox:Auth"). A disabled or unknown account costs the same PBKDF2
/// work as a real one and fails the same way, so neither timing nor reply tells which names exist.
/// </summary>
internal sealed class MailboxLogin
{
    private readonly IMailStore _store;
    private readonly AuthThrottle _throttle;
    private readonly Lazy<PasswordHash.Parsed> _dummy = new(() =>
        PasswordHash.TryParse(PasswordHash.Create(Guid.NewGuid().ToString()), out var parsed, out _) ? parsed : throw new InvalidOperationException("The dummy hash does not parse."));

    private readonly MailboxProtocolMetrics _metrics;

    public MailboxLogin(IMailStore store, Microsoft.Extensions.Options.IOptions<MailboxAuthOptions> options, MailboxProtocolMetrics metrics, TimeProvider time)
    {
        _store = store;
        _metrics = metrics;
        _throttle = new AuthThrottle(options.Value, time);
    }

    public bool IsLockedOut(string client) => _throttle.IsLockedOut(client);

    /// <summary>The account on success, else null with the outcome (failed or locked out).</summary>
    public async Task<(AuthOutcome Outcome, MailAccount? Account)> LoginAsync(string protocol, string client, string user, string password, CancellationToken cancellationToken)
    {
        MailAccount? account = null;
        if (user.Length is > 0 and <= 320 && user.Contains('@', StringComparison.Ordinal))
        {
            try
            {
                account = await _store.GetAccountAsync(user, cancellationToken);
            }
            catch (ArgumentException)
            {
                // Not an address the store accepts: an unknown account.
            }
        }

        PasswordHash.Parsed? hash = null;
        var usable = account is { Disabled: false } && PasswordHash.TryParse(account.PasswordHash, out hash, out _);
        var outcome = await _throttle.VerifyAsync(client, user.ToLowerInvariant(), usable, () =>
            (hash ?? _dummy.Value).Verify(Encoding.UTF8.GetBytes(password)) && usable, cancellationToken);
        _metrics.Login(protocol, outcome switch { AuthOutcome.Succeeded => "succeeded", AuthOutcome.LockedOut => "locked_out", _ => "failed" });
        return outcome == AuthOutcome.Succeeded ? (outcome, account) : (outcome, null);
    }

    /// <summary>RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, base64 (RFC 4648); false when malformed.</summary>
    public static bool TryDecodePlain(ReadOnlySpan<byte> base64, out string user, out string password)
    {
        user = password = string.Empty;
        var decoded = new byte[System.Buffers.Text.Base64.GetMaxDecodedFromUtf8Length(base64.Length)];
        if (System.Buffers.Text.Base64.DecodeFromUtf8(base64, decoded, out _, out var written) != System.Buffers.OperationStatus.Done)
        {
            return false;
        }

        var message = decoded.AsSpan(0, written);
        var first = message.IndexOf((byte)0);
        var second = first < 0 ? -1 : message[(first + 1)..].IndexOf((byte)0);
        if (second < 0)
        {
            return false;
        }

        second += first + 1;
        var authorization = Encoding.UTF8.GetString(message[..first]);
        user = Encoding.UTF8.GetString(message[(first + 1)..second]);
        password = Encoding.UTF8.GetString(message[(second + 1)..]);

        // Acting as another identity is not supported (RFC 4616 §2 lets the server refuse): fail like a bad password.
        if (authorization.Length > 0 && !authorization.Equals(user, StringComparison.OrdinalIgnoreCase))
        {
            password = string.Empty;
            user = "\0" + user;
        }

        return true;
    }
}
