using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Smtp;

namespace MailMesh.Mailbox.Accounts;

/// <summary>
/// Accounts, aliases and catch-alls from configuration (section "Mailbox"), written into the mail store at every start
/// (<see cref="AccountSync"/>): configuration wins for what it names (password hash, quota, disabled); accounts made
/// over the admin API are left alone.
/// </summary>
public sealed class MailboxAccountsOptions : IValidatedOptions
{
    public static string SectionName => "Mailbox";

    public List<MailboxUser> Users { get; set; } = [];

    public List<MailboxAlias> Aliases { get; set; } = [];

    public IEnumerable<string> Validate()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Users.Count; i++)
        {
            var user = Users[i];
            var key = $"Mailbox:Users:{i}:";
            if (!NormalizedAddress.TryParse(user.Address?.Trim(), out var address) || address.IsAddressLiteral)
            {
                yield return $"{key}Address: '{user.Address}' is not an email address (local-part@domain)";
            }
            else if (!seen.Add(address.ComparisonKey))
            {
                yield return $"{key}Address: '{user.Address}' is configured twice";
            }

            if (!string.IsNullOrEmpty(user.PasswordHash) && !PasswordHash.TryParse(user.PasswordHash, out _, out var error))
            {
                yield return $"{key}PasswordHash: {error}";
            }

            if (user.QuotaBytes is < 0)
            {
                yield return $"{key}QuotaBytes: must not be negative (was {user.QuotaBytes}); omit it for no quota";
            }
        }

        for (var i = 0; i < Aliases.Count; i++)
        {
            var alias = Aliases[i];
            var key = $"Mailbox:Aliases:{i}:";
            var text = alias.Address?.Trim() ?? string.Empty;
            var valid = text.StartsWith('@')
                ? NormalizedAddress.TryNormalizeDomain(text[1..], out _)
                : NormalizedAddress.TryParse(text, out var parsed) && !parsed.IsAddressLiteral;
            if (!valid)
            {
                yield return $"{key}Address: '{alias.Address}' is neither an email address nor a catch-all (@domain)";
            }

            if (!NormalizedAddress.TryParse(alias.Target?.Trim(), out _))
            {
                yield return $"{key}Target: '{alias.Target}' is not an email address (an account's address)";
            }
        }
    }
}

/// <summary>One configured account: Mailbox:Users:n:Address, :PasswordHash, :QuotaBytes, :Disabled.</summary>
public sealed class MailboxUser
{
    public string Address { get; set; } = string.Empty;

    /// <summary><c>pbkdf2-sha256$…</c> as printed by the <c>hash-password</c> verb; empty: the account receives but cannot log in.</summary>
    public string PasswordHash { get; set; } = string.Empty;

    /// <summary>Most bytes its messages may take; absent for no limit.</summary>
    public long? QuotaBytes { get; set; }

    public bool Disabled { get; set; }
}

/// <summary>One configured alias (Mailbox:Aliases:n:Address, :Target); an Address of "@domain" is that domain's catch-all.</summary>
public sealed class MailboxAlias
{
    public string Address { get; set; } = string.Empty;

    public string Target { get; set; } = string.Empty;
}
