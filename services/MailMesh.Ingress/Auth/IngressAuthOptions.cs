using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;

namespace MailMesh.Ingress.Auth;

/// <summary>
/// SMTP AUTH (RFC 4954) for the Ingress listeners (section "Ingress:Auth"): the accounts, whether AUTH may be used
/// without TLS, and the brute-force throttle (per client network, with a throttle but no lockout per account; see
/// <see cref="Authenticator"/>).
/// </summary>
public sealed class IngressAuthOptions : IValidatedOptions, IAuthThrottleSettings
{
    public static string SectionName => "Ingress:Auth";

    /// <summary>Accounts allowed to authenticate (and so to relay). Passwords are stored hashed only.</summary>
    public List<AuthUser> Users { get; set; } = [];

    /// <summary>Offer AUTH before TLS (RFC 4954 §4 advises against it; only for trusted networks and tests).</summary>
    public bool AllowPlaintext { get; set; }

    /// <summary>
    /// Failures from one client network (an IPv4 address or an IPv6 /64) within <see cref="FailureWindow"/> that lock
    /// that network out. Accounts are never locked out, only throttled.
    /// </summary>
    public int MaxFailures { get; set; } = 5;

    /// <summary>The window failures are counted in.</summary>
    public TimeSpan FailureWindow { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long a locked-out client network gets 454 4.7.0 to every AUTH (without its password being checked).</summary>
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// The wait before checking a password after a recent failure from the same client network or against the same
    /// account, doubled with each further failure (exponential back-off).
    /// </summary>
    public TimeSpan FailureDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The cap of the exponential failure delay.</summary>
    public TimeSpan MaxFailureDelay { get; set; } = TimeSpan.FromSeconds(16);

    public IEnumerable<string> Validate()
    {
        const string P = "Ingress:Auth:";
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < Users.Count; i++)
        {
            var user = Users[i];
            if (string.IsNullOrWhiteSpace(user.Name))
            {
                yield return $"{P}Users:{i}:Name: must not be empty";
            }
            else if (!names.Add(user.Name))
            {
                yield return $"{P}Users:{i}:Name: '{user.Name}' is listed twice";
            }

            if (!PasswordHash.TryParse(user.PasswordHash, out _, out var error))
            {
                yield return $"{P}Users:{i}:PasswordHash: {error}";
            }

            if (!Acceptance.SenderDomains.IsValid(user.SenderDomains))
            {
                yield return $"{P}Users:{i}:SenderDomains: '{user.SenderDomains}' must be comma-separated domain names";
            }
        }

        foreach (var failure in IAuthThrottleSettings.Validate(this, "Ingress:Auth"))
        {
            yield return failure;
        }
    }
}

/// <summary>One AUTH account.</summary>
public sealed class AuthUser
{
    public string Name { get; set; } = string.Empty;

    /// <summary>"pbkdf2-sha256$iterations$salt$hash", as printed by "MailMesh.Ingress hash-password".</summary>
    public string PasswordHash { get; set; } = string.Empty;

    /// <summary>
    /// Comma-separated domains (each with its sub-domains) this account may use as the From domain; empty: any. A
    /// message from another domain is refused at the end of data with 550 5.7.1 (DKIM signs for the From domain).
    /// </summary>
    public string? SenderDomains { get; set; }
}
