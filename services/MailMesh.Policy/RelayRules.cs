using System.Net;
using System.Net.Sockets;
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
    public static string RateKey(string clientAddress)
    {
        if (!TryParseClient(clientAddress, out var address))
        {
            return clientAddress.Trim().ToLowerInvariant();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes).ToString() + "/64";
    }
}
