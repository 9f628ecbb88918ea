using System.Globalization;
using System.Net;
using MailMesh.Policy.Spf;
using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Dnsbl;

/// <summary>One DNS list (RFC 5782): a block list with a positive weight, an allow list (DNSWL) with a negative one.</summary>
public sealed class DnsblZone
{
    /// <summary>The list's zone, e.g. <c>zen.spamhaus.org</c> or <c>list.dnswl.org</c>.</summary>
    public string Zone { get; set; } = string.Empty;

    /// <summary>Added to the client's score when it is listed; negative for an allow list. Default 1.</summary>
    public double Weight { get; set; } = 1;

    /// <summary>
    /// Comma-separated 127.0.0.x answers that count as listed (e.g. "127.0.0.2,127.0.0.3,127.0.0.4"). Empty: any answer
    /// in 127.0.0.0/8 except 127.255.255.0/24, which lists such as Spamhaus use for errors (a refused resolver).
    /// </summary>
    public string? ReplyCodes { get; set; }

    internal IReadOnlySet<IPAddress> ParsedReplyCodes => (ReplyCodes ?? string.Empty)
        .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
        .Select(IPAddress.Parse)
        .ToHashSet();
}

/// <summary>DNSBL/DNSWL checks of the client address at connect (section "Policy:Dnsbl", RFC 5782).</summary>
public sealed class DnsblOptions : IValidatedOptions
{
    public static string SectionName => "Policy:Dnsbl";

    /// <summary>Look the client up in <see cref="Zones"/> at connect. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary>The lists, <c>Policy:Dnsbl:Zones:&lt;n&gt;:Zone</c>, <c>:Weight</c>, <c>:ReplyCodes</c>.</summary>
    public List<DnsblZone> Zones { get; set; } = [];

    /// <summary>A client whose summed weights reach this is refused at connect with 554 5.7.1. Default 1 (one list).</summary>
    public double Threshold { get; set; } = 1;

    /// <summary>Bound on the lookups of one connection (all zones at once); a zone that has not answered is not counted.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Answers are cached for their TTL (the SOA's negative TTL for "not listed"), at most this long.</summary>
    public TimeSpan MaxCacheDuration { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Answers kept in the cache; beyond this, expired entries are dropped, then the whole cache.</summary>
    public int MaxCacheEntries { get; set; } = 100_000;

    /// <summary>Comma-separated resolvers ("ip" or "ip:port", one port). Empty: <c>Dns:Servers</c>, then the system's.
    /// Public lists refuse queries from big public resolvers: use a local recursive resolver.</summary>
    public string? DnsServers { get; set; }

    public IEnumerable<string> Validate()
    {
        var errors = new List<string>();
        if (Enabled && Zones.Count == 0)
        {
            errors.Add($"{SectionName}:Zones: at least one zone is needed when {SectionName}:Enabled is true");
        }

        for (var i = 0; i < Zones.Count; i++)
        {
            var key = string.Create(CultureInfo.InvariantCulture, $"{SectionName}:Zones:{i}");
            var zone = Zones[i];
            if (string.IsNullOrWhiteSpace(zone.Zone) || Uri.CheckHostName(zone.Zone.TrimEnd('.')) != UriHostNameType.Dns || !zone.Zone.Contains('.', StringComparison.Ordinal))
            {
                errors.Add($"{key}:Zone: '{zone.Zone}' must be a DNS zone such as zen.spamhaus.org");
            }

            if (double.IsNaN(zone.Weight) || double.IsInfinity(zone.Weight))
            {
                errors.Add($"{key}:Weight: must be a number");
            }

            foreach (var code in (zone.ReplyCodes ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!IPAddress.TryParse(code, out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || address.GetAddressBytes()[0] != 127)
                {
                    errors.Add($"{key}:ReplyCodes: '{code}' is not an address in 127.0.0.0/8");
                }
            }
        }

        if (double.IsNaN(Threshold) || Threshold <= 0)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(Threshold)}: must be positive (was {Threshold})"));
        }

        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromSeconds(60))
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(Timeout)}: must be positive and at most 60 seconds (was {Timeout})"));
        }

        if (MaxCacheDuration < TimeSpan.Zero)
        {
            errors.Add($"{SectionName}:{nameof(MaxCacheDuration)}: must not be negative (0 disables the cache)");
        }

        if (MaxCacheEntries < 1)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(MaxCacheEntries)}: must be at least 1 (was {MaxCacheEntries})"));
        }

        try
        {
            _ = SpfOptions.ParseServers(DnsServers, $"{SectionName}:{nameof(DnsServers)}");
        }
        catch (FormatException ex)
        {
            errors.Add(ex.Message.Replace("for SPF lookups", "for DNSBL lookups", StringComparison.Ordinal));
        }

        return errors;
    }
}
