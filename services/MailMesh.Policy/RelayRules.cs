using System.Net;
using System.Net.Sockets;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Smtp;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy;

/// <summary>The parsed form of <see cref="PolicyOptions.RelayNetworks"/> and <see cref="PolicyOptions.LocalDomains"/>.</summary>
internal sealed class RelayRules
{
    private readonly IPNetwork[] _networks;
    private readonly HashSet<string> _localDomains;

    public RelayRules(IOptions<PolicyOptions> options)
        : this(options.Value)
    {
    }

    internal RelayRules(PolicyOptions options)
    {
        // Validated at start-up (PolicyOptions.Validate), so every entry parses.
        _networks = [.. PolicyOptions.Split(options.RelayNetworks).Select(n => IPNetwork.Parse(n))];
        _localDomains = new HashSet<string>(
            PolicyOptions.Split(options.LocalDomains).Select(d => NormalizedAddress.TryNormalizeDomain(d.TrimEnd('.'), out var ace) ? ace : d.TrimEnd('.').ToLowerInvariant()),
            StringComparer.Ordinal);
    }

    /// <summary>Shortest prefixes not reported as broad: an IPv4 /24, an IPv6 /48 (one site's allocation).</summary>
    public const int BroadIPv4Prefix = 24;
    public const int BroadIPv6Prefix = 48;

    private static readonly IPNetwork Loopback = IPNetwork.Parse("127.0.0.0/8");

    /// <summary>
    /// The configured relay networks wider than one site (an IPv4 prefix shorter than /24, an IPv6 prefix shorter than
    /// /48; 0.0.0.0/0 and ::/0 are the extreme case; loopback is not): every host in them may relay anywhere, so they are reported at
    /// start. An IPv4-mapped IPv6 network (::ffff:a.b.c.d/n) counts as the IPv4 network /(n-96).
    /// </summary>
    public static IReadOnlyList<string> BroadNetworks(PolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var broad = new List<string>();
        foreach (var entry in PolicyOptions.Split(options.RelayNetworks))
        {
            if (!IPNetwork.TryParse(entry, out var network))
            {
                continue;
            }

            var address = network.BaseAddress;
            if (network.PrefixLength >= 8 && Loopback.Contains(address))
            {
                continue; // 127.0.0.0/8 is this host, however it is written.
            }

            var isBroad = address.AddressFamily == AddressFamily.InterNetwork
                ? network.PrefixLength < BroadIPv4Prefix
                : address.IsIPv4MappedToIPv6 && network.PrefixLength >= 96
                    ? network.PrefixLength - 96 < BroadIPv4Prefix
                    : network.PrefixLength < BroadIPv6Prefix;
            if (isBroad)
            {
                broad.Add(entry);
            }
        }

        return broad;
    }

    /// <summary>Whether a client at <paramref name="clientAddress"/> may relay without authenticating.</summary>
    public bool IsRelayClient(string clientAddress) =>
        TryParseClient(clientAddress, out var address) && _networks.Any(n => n.Contains(address));

    /// <summary>Whether MailMesh accepts mail for <paramref name="domain"/> (already lower-cased, no trailing dot) from anyone.</summary>
    public bool IsLocalDomain(string domain) => _localDomains.Contains(domain);

    /// <summary>
    /// Parses a client address; an IPv4-mapped IPv6 address (::ffff:192.0.2.1, what a dual-stack socket reports) is
    /// taken as the IPv4 address, so IPv4 networks match it.
    /// </summary>
    public static bool TryParseClient(string? clientAddress, out IPAddress address)
    {
        if (!IPAddress.TryParse(clientAddress, out var parsed))
        {
            address = IPAddress.None;
            return false;
        }

        address = parsed.IsIPv4MappedToIPv6 ? parsed.MapToIPv4() : parsed;
        return true;
    }

    /// <summary>
    /// The key rate limits count a client under: the IPv4 address, or the IPv6 /64 (one subscriber's allocation; a
    /// client can pick any of its 2^64 addresses at will, so counting them apart would make the limit meaningless).
    /// </summary>
    public static string RateKey(string clientAddress) => ClientNetwork.Key(clientAddress);
}
