using System.Net;
using System.Net.Sockets;

namespace MailMesh.ServiceDefaults.Security;

/// <summary>
/// The unit that per-client limits count (connection limits, rate limits, AUTH throttles): an IPv4 address, or an IPv6
/// /64. One subscriber gets at least a /64 (RFC 6177 §3, RIPE-690) and can use any of its 2^64 addresses at will, so
/// counting IPv6 addresses apart would make every per-client limit meaningless. An IPv4-mapped IPv6 address
/// (::ffff:192.0.2.1, what a dual-stack socket reports) counts as the IPv4 address.
/// </summary>
public static class ClientNetwork
{
    /// <summary>"192.0.2.1", "2001:db8:aa:bb::/64", or "unknown" without an address.</summary>
    public static string Key(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes) + "/64";
    }

    /// <summary>The key of a client address in text form; text that is not an IP address is its own (lower-cased) key.</summary>
    public static string Key(string? clientAddress) =>
        IPAddress.TryParse(clientAddress, out var address) ? Key(address) : (clientAddress ?? string.Empty).Trim().ToLowerInvariant();
}
