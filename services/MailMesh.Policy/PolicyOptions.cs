using System.Net;
using MailMesh.ServiceDefaults;
using MailMesh.Smtp;

namespace MailMesh.Policy;

/// <summary>Accept/reject rules (section "Policy").</summary>
public sealed class PolicyOptions : IValidatedOptions
{
    public static string SectionName => "Policy";

    /// <summary>
    /// Comma-separated CIDR networks (IPv4 and IPv6) whose clients may relay to any domain without authenticating
    /// (Postfix <c>mynetworks</c>). Default: none, so relaying needs AUTH or an API key (standalone: loopback only).
    /// A container's bridge network is not a trusted network: Docker's port forwarding makes outside clients appear
    /// to come from its gateway. Networks broader than /24 (IPv4) or /48 (IPv6) are logged as a warning at start.
    /// </summary>
    public string RelayNetworks { get; set; } = string.Empty;

    /// <summary>Comma-separated domains MailMesh accepts mail for from anyone (Postfix <c>relay_domains</c>). Default: none.</summary>
    public string LocalDomains { get; set; } = string.Empty;

    /// <summary>Largest message accepted, in bytes (RFC 1870 SIZE; same default as Ingress, 35 MiB).</summary>
    public long MaxMessageSize { get; set; } = 36_700_160;

    /// <summary>Most recipients in one transaction (RFC 5321 §4.5.3.1.8 requires at least 100).</summary>
    public int MaxRecipientsPerMessage { get; set; } = 1000;

    /// <summary>New connections per client address per minute, across all replicas; 0 disables the limit.</summary>
    public int ConnectionsPerMinutePerIp { get; set; } = 600;

    /// <summary>Messages per client address per minute, across all replicas; 0 disables the limit.</summary>
    public int MessagesPerMinutePerIp { get; set; } = 600;

    public IEnumerable<string> Validate()
    {
        foreach (var entry in Split(RelayNetworks))
        {
            if (!IPNetwork.TryParse(entry, out _))
            {
                yield return $"{SectionName}:{nameof(RelayNetworks)}: '{entry}' is not a CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)";
            }
        }

        foreach (var entry in Split(LocalDomains))
        {
            var domain = entry.TrimEnd('.');
            if (!NormalizedAddress.TryNormalizeDomain(domain, out _))
            {
                yield return $"{SectionName}:{nameof(LocalDomains)}: '{entry}' is not a domain name";
            }
        }

        if (MaxMessageSize <= 0)
        {
            yield return $"{SectionName}:{nameof(MaxMessageSize)}: must be positive (was {MaxMessageSize})";
        }

        if (MaxRecipientsPerMessage < 100)
        {
            yield return $"{SectionName}:{nameof(MaxRecipientsPerMessage)}: must be at least 100 (RFC 5321 §4.5.3.1.8; was {MaxRecipientsPerMessage})";
        }

        if (ConnectionsPerMinutePerIp < 0)
        {
            yield return $"{SectionName}:{nameof(ConnectionsPerMinutePerIp)}: must not be negative (0 disables the limit; was {ConnectionsPerMinutePerIp})";
        }

        if (MessagesPerMinutePerIp < 0)
        {
            yield return $"{SectionName}:{nameof(MessagesPerMinutePerIp)}: must not be negative (0 disables the limit; was {MessagesPerMinutePerIp})";
        }
    }

    internal static IEnumerable<string> Split(string? list) =>
        (list ?? string.Empty).Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
