using System.Globalization;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;

namespace MailMesh.Admin;

/// <summary>
/// The admin UI's accounts (section "Admin", beside Admin:ApiKeys): who may log in and with which role.
/// Passwords are stored only as PBKDF2 hashes made by the <c>hash-password</c> verb of any service.
/// </summary>
public sealed class AdminAccountsOptions : IValidatedOptions
{
    /// <inheritdoc />
    public static string SectionName => "Admin";

    /// <summary>Admin:Users:n:Name, :PasswordHash and :Role (viewer, operator or admin).</summary>
    public List<AdminUserOptions> Users { get; set; } = [];

    /// <inheritdoc />
    public IEnumerable<string> Validate()
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < Users.Count; i++)
        {
            var user = Users[i];
            var prefix = "Admin:Users:" + i.ToString(CultureInfo.InvariantCulture) + ":";
            if (!ApiKeys.IsValidName(user.Name))
            {
                yield return prefix + "Name: required, 1 to 64 characters of letters, digits and . _ @ -";
            }
            else if (!names.Add(user.Name!))
            {
                yield return prefix + $"Name: '{user.Name}' is used by another admin user";
            }

            if (!PasswordHash.TryParse(user.PasswordHash, out _, out var error))
            {
                yield return prefix + "PasswordHash: " + error;
            }

            if (!AdminRoles.TryParse(user.Role, out _))
            {
                yield return prefix + $"Role: '{user.Role}' is not a role (viewer, operator, admin)";
            }
        }
    }
}

/// <summary>One admin UI account.</summary>
public sealed class AdminUserOptions
{
    /// <summary>The login name, shown in the UI and in the logs.</summary>
    public string? Name { get; set; }

    /// <summary><c>pbkdf2-sha256$iterations$salt$hash</c>, as printed by <c>hash-password</c>.</summary>
    public string? PasswordHash { get; set; }

    /// <summary>viewer (sees), operator (also acts on the queue and suppressions) or admin (everything).</summary>
    public string? Role { get; set; }
}

/// <summary>
/// How the UI reaches the admin API and guards its login (section "Admin:Ui"). In Standalone the API is the same
/// process: the URLs default to its own address and a key is made at start-up when none is configured.
/// </summary>
public sealed class AdminUiOptions : IValidatedOptions
{
    /// <inheritdoc />
    public static string SectionName => "Admin:Ui";

    /// <summary>Base URL of the Queue service's HTTP API (messages, queue summary, audit, keys).</summary>
    public Uri? QueueUrl { get; set; }

    /// <summary>Base URL of the Policy service's HTTP API (suppressions).</summary>
    public Uri? PolicyUrl { get; set; }

    /// <summary>Base URL of the Mailbox service's HTTP API (mailbox accounts); optional.</summary>
    public Uri? MailboxUrl { get; set; }

    /// <summary>Base URL of the Ingress service's HTTP API (SMTP users); optional.</summary>
    public Uri? IngressUrl { get; set; }

    /// <summary>Base URL of the Delivery service's HTTP API (DKIM keys); optional.</summary>
    public Uri? DeliveryUrl { get; set; }

    /// <summary>The admin API key the UI presents (a secret; its hash is in Admin:ApiKeys of the services).</summary>
    public string? ApiKey { get; set; }

    /// <summary>Failed logins in a row after which an account is locked.</summary>
    public int MaxFailedLogins { get; set; } = 5;

    /// <summary>How long a locked account stays locked.</summary>
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long a login lasts without activity (sliding).</summary>
    public TimeSpan SessionDuration { get; set; } = TimeSpan.FromHours(8);

    /// <summary>
    /// Send the session cookie only over HTTPS (true, the default). False sends it as the request came (for a UI
    /// reached over plain HTTP on loopback, as Standalone by default).
    /// </summary>
    public bool SecureCookie { get; set; } = true;

    /// <summary>Timeout of one call to the admin API.</summary>
    public TimeSpan ApiTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Set by Standalone (not configuration): the API is this process, so URLs may be left out.</summary>
    internal bool SameProcess { get; set; }

    /// <inheritdoc />
    public IEnumerable<string> Validate()
    {
        if (!SameProcess)
        {
            if (QueueUrl is null)
            {
                yield return "Admin:Ui:QueueUrl: required, the Queue service's base URL (e.g. http://queue:8080)";
            }

            if (PolicyUrl is null)
            {
                yield return "Admin:Ui:PolicyUrl: required, the Policy service's base URL (e.g. http://policy:8080)";
            }

            if (string.IsNullOrWhiteSpace(ApiKey))
            {
                yield return "Admin:Ui:ApiKey: required, an admin API key with the scopes the UI uses (run: new-api-key)";
            }
        }

        foreach (var (name, url) in new[] { ("QueueUrl", QueueUrl), ("PolicyUrl", PolicyUrl), ("MailboxUrl", MailboxUrl), ("IngressUrl", IngressUrl), ("DeliveryUrl", DeliveryUrl) })
        {
            if (url is not null && (!url.IsAbsoluteUri || url.Scheme is not ("http" or "https")))
            {
                yield return $"Admin:Ui:{name}: '{url}' is not an absolute http:// or https:// URL";
            }
        }

        if (ApiKey is { Length: > ApiKeys.MaxKeyLength })
        {
            yield return $"Admin:Ui:ApiKey: longer than {ApiKeys.MaxKeyLength} characters";
        }

        if (MaxFailedLogins is < 1 or > 1000)
        {
            yield return "Admin:Ui:MaxFailedLogins: must be between 1 and 1000";
        }

        if (LockoutDuration <= TimeSpan.Zero)
        {
            yield return "Admin:Ui:LockoutDuration: must be positive";
        }

        if (SessionDuration <= TimeSpan.Zero)
        {
            yield return "Admin:Ui:SessionDuration: must be positive";
        }

        if (ApiTimeout <= TimeSpan.Zero)
        {
            yield return "Admin:Ui:ApiTimeout: must be positive";
        }
    }
}
