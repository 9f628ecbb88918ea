using System.Globalization;
using System.Net;
using MailMesh.ServiceDefaults;

namespace MailMesh.Dns;

/// <summary>Resolver settings (section "Dns").</summary>
public sealed class DnsOptions : IValidatedOptions
{
    public static string SectionName => "Dns";

    /// <summary>
    /// Comma-separated recursive resolvers as "ip" or "ip:port" ("[v6]:port" for IPv6 with a port). Empty: the
    /// system's resolvers (/etc/resolv.conf, or the adapters' DNS servers on Windows).
    /// </summary>
    public string? Servers { get; set; }

    /// <summary>Time to wait for one answer before retrying.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Retries per query after a timeout (not after an answer).</summary>
    public int Retries { get; set; } = 2;

    /// <summary>Domains kept in the cache; beyond this the entries closest to expiry are dropped.</summary>
    public int MaxCacheEntries { get; set; } = 100_000;

    /// <summary>Floor of a positive answer's cache lifetime (shields the resolvers from TTL 0 records).</summary>
    public TimeSpan MinTtl { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Ceiling of any cache lifetime.</summary>
    public TimeSpan MaxTtl { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// Cache lifetime of NXDOMAIN / no-data answers when the answer carries no SOA. RFC 2308 §5: with an SOA, the
    /// lifetime is min(SOA TTL, SOA MINIMUM), still capped by this value.
    /// </summary>
    public TimeSpan NegativeTtl { get; set; } = TimeSpan.FromSeconds(300);

    /// <summary>
    /// Cache lifetime of a temporary failure (SERVFAIL, timeout): short, so a burst of deliveries to a broken domain
    /// costs one lookup while the next retry (minutes later) asks again. Zero disables it.
    /// </summary>
    public TimeSpan TemporaryFailureTtl { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>List each exchanger's IPv6 addresses before its IPv4 ones (default: IPv4 first; both are listed).</summary>
    public bool PreferIPv6 { get; set; }

    /// <summary>The parsed <see cref="Servers"/>; empty means the system resolvers.</summary>
    internal IReadOnlyList<IPEndPoint> ParseServers()
    {
        if (string.IsNullOrWhiteSpace(Servers))
        {
            return [];
        }

        var result = new List<IPEndPoint>();
        foreach (var entry in Servers.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            result.Add(TryParseServer(entry, out var endPoint)
                ? endPoint
                : throw new ConfigurationKeyException("Dns:Servers", $"'{entry}' is not an IP address or ip:port"));
        }

        return result;
    }

    private static bool TryParseServer(string entry, out IPEndPoint endPoint)
    {
        // IPEndPoint.TryParse takes "1.2.3.4", "1.2.3.4:5353", "::1" and "[::1]:5353"; no port means 53.
        if (IPEndPoint.TryParse(entry, out var parsed))
        {
            endPoint = parsed.Port == 0 ? new IPEndPoint(parsed.Address, 53) : parsed;
            return true;
        }

        endPoint = null!;
        return false;
    }

    public IEnumerable<string> Validate()
    {
        if (!string.IsNullOrWhiteSpace(Servers))
        {
            foreach (var entry in Servers.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!TryParseServer(entry, out _))
                {
                    yield return $"Dns:Servers: '{entry}' is not an IP address or ip:port";
                }
            }
        }

        if (Timeout <= TimeSpan.Zero)
        {
            yield return "Dns:Timeout: must be positive";
        }

        if (Retries < 0)
        {
            yield return "Dns:Retries: must not be negative";
        }

        if (MaxCacheEntries < 1)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"Dns:MaxCacheEntries: must be at least 1 (was {MaxCacheEntries})");
        }

        if (MinTtl < TimeSpan.Zero)
        {
            yield return "Dns:MinTtl: must not be negative";
        }

        if (MaxTtl < MinTtl)
        {
            yield return "Dns:MaxTtl: must not be less than Dns:MinTtl";
        }

        if (NegativeTtl < TimeSpan.Zero)
        {
            yield return "Dns:NegativeTtl: must not be negative";
        }

        if (TemporaryFailureTtl < TimeSpan.Zero)
        {
            yield return "Dns:TemporaryFailureTtl: must not be negative";
        }
    }
}
