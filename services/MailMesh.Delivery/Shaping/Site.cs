using MailMesh.Contracts;

namespace MailMesh.Delivery.Shaping;

/// <summary>
/// A destination site: the destinations that share one budget. Named after the provider rule their MX set matched
/// ("google"), a domain override (the domain, or the site it names), or else the sorted, de-duplicated MX host names
/// joined by commas ("mx1.example.net,mx2.example.net"), so every domain hosted on the same exchangers shares one site.
/// </summary>
internal sealed record Site(string Name, ShapingLimits Limits)
{
    /// <summary>The budget key of this site from <paramref name="sourceIp"/> ("default" until a source IP is chosen).</summary>
    public string BudgetKey(string sourceIp) => Name + "|" + sourceIp;
}

/// <summary>Groups destinations into <see cref="Site"/>s by the shaping rules.</summary>
internal sealed class SiteResolver(ShapingRules rules)
{
    public ShapingRules Rules => rules;

    /// <summary>The site of <paramref name="domain"/> whose exchangers are <paramref name="hosts"/>.</summary>
    public Site Resolve(string domain, IReadOnlyList<MxHost> hosts)
    {
        var key = domain.TrimEnd('.').ToLowerInvariant();
        ProviderRule? provider = null;
        foreach (var rule in rules.Providers)
        {
            if (hosts.Any(h => rule.Matches(h.Name)))
            {
                provider = rule;
                break;
            }
        }

        var limits = rules.Default.With(provider?.Limits);
        if (rules.Domains.TryGetValue(key, out var domainRule))
        {
            return new Site(domainRule.Site ?? key, limits.With(domainRule.Limits));
        }

        return provider is not null
            ? new Site(provider.Site, limits)
            : new Site(SiteName(hosts, key), limits);
    }

    /// <summary>The site name of an MX set that matches no rule: its sorted host names (lower case, no trailing dot).</summary>
    internal static string SiteName(IReadOnlyList<MxHost> hosts, string domain) =>
        hosts.Count == 0 ? domain
        : string.Join(',', hosts.Select(h => h.Name.TrimEnd('.').ToLowerInvariant()).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));
}
