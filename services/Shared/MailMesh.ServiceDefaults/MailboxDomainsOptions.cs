using MailMesh.Smtp;

namespace MailMesh.ServiceDefaults;

/// <summary>
/// <c>Policy:MailboxDomains</c>: the domains this MailMesh is the final destination for (issue 9; Postfix's
/// <c>virtual_mailbox_domains</c>). Their recipients are accepted from anyone like <c>Policy:LocalDomains</c>, but only
/// when the mail store has an account, alias or catch-all for them (Policy, at RCPT), and Queue hands them to the Mailbox
/// service instead of routing them by MX. One setting read by Policy, Queue and Mailbox, so they cannot disagree.
/// </summary>
public sealed class MailboxDomainsOptions : IValidatedOptions
{
    public static string SectionName => "Policy";

    /// <summary>Comma-separated domains (U-labels or A-labels).</summary>
    public string MailboxDomains { get; set; } = string.Empty;

    private HashSet<string>? _domains;

    /// <summary>The domains in A-label form, lower-cased.</summary>
    public IReadOnlySet<string> Domains => _domains ??= new HashSet<string>(
        Entries().Select(d => NormalizedAddress.TryNormalizeDomain(d.TrimEnd('.'), out var ace) ? ace : d.TrimEnd('.').ToLowerInvariant()),
        StringComparer.Ordinal);

    /// <summary>Whether <paramref name="domain"/> (as the spool and NormalizedAddress give it: A-label, lower-case) is a mailbox domain.</summary>
    public bool Contains(string domain) => Domains.Contains(domain);

    public IEnumerable<string> Validate()
    {
        foreach (var entry in Entries())
        {
            if (!NormalizedAddress.TryNormalizeDomain(entry.TrimEnd('.'), out _))
            {
                yield return $"{SectionName}:{nameof(MailboxDomains)}: '{entry}' is not a domain name";
            }
        }
    }

    private IEnumerable<string> Entries() =>
        MailboxDomains.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
