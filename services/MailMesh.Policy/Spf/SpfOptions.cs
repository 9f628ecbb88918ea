using System.Globalization;
using System.Net;
using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Spf;

/// <summary>What to do with an SPF result (RFC 7208 §8): record it in the header, or refuse the mail.</summary>
public enum SpfAction
{
    /// <summary>Accept and record the result in the Received-SPF header.</summary>
    Tag,

    /// <summary>Refuse: 550 5.7.23 for fail, 550 5.7.24 for permerror, 451 4.7.24 for temperror (RFC 7372 §3.2).</summary>
    Reject,
}

/// <summary>SPF checking of inbound mail (section "Policy:Spf", RFC 7208).</summary>
public sealed class SpfOptions : IValidatedOptions
{
    public static string SectionName => "Policy:Spf";

    /// <summary>
    /// Check SPF for mail from clients that are neither relay clients nor authenticated. Default false: turning it on
    /// starts DNS lookups for every inbound transaction, so it is a deliberate choice for an internet-facing MX.
    /// </summary>
    public bool Enabled { get; set; }

    /// <summary>RFC 7208 §8.4 fail: <c>tag</c> (default) or <c>reject</c> (550 5.7.23).</summary>
    public SpfAction FailAction { get; set; } = SpfAction.Tag;

    /// <summary>RFC 7208 §8.6 temperror: <c>tag</c> (default) or <c>reject</c> (451 4.7.24, the client retries).</summary>
    public SpfAction TempErrorAction { get; set; } = SpfAction.Tag;

    /// <summary>RFC 7208 §8.7 permerror: <c>tag</c> (default) or <c>reject</c> (550 5.7.24).</summary>
    public SpfAction PermErrorAction { get; set; } = SpfAction.Tag;

    /// <summary>Bound on one whole evaluation (every DNS query of it); past it the result is temperror. RFC 7208 §4.6.4
    /// asks for at least 20 seconds overall, but the SMTP client waits at RCPT: keep it under Ingress:PolicyTimeout.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a result is reused for the same client address and domain (a burst costs one evaluation).</summary>
    public TimeSpan CacheDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Results kept in the cache; beyond this, expired entries are dropped, then the whole cache.</summary>
    public int MaxCacheEntries { get; set; } = 10_000;

    /// <summary>
    /// The authserv-id / receiver named in the Received-SPF header (RFC 7208 §9.1 "receiver"). Empty: the host name.
    /// </summary>
    public string? AuthServId { get; set; }

    /// <summary>
    /// Comma-separated resolvers ("ip" or "ip:port"; all with the same port). Empty: <c>Dns:Servers</c>, and when that
    /// is empty too the system's resolvers.
    /// </summary>
    public string? DnsServers { get; set; }

    public IEnumerable<string> Validate()
    {
        if (!Enum.IsDefined(FailAction))
        {
            yield return $"{SectionName}:{nameof(FailAction)}: must be tag or reject";
        }

        if (!Enum.IsDefined(TempErrorAction))
        {
            yield return $"{SectionName}:{nameof(TempErrorAction)}: must be tag or reject";
        }

        if (!Enum.IsDefined(PermErrorAction))
        {
            yield return $"{SectionName}:{nameof(PermErrorAction)}: must be tag or reject";
        }

        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromMinutes(2))
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(Timeout)}: must be positive and at most 2 minutes (was {Timeout})");
        }

        if (CacheDuration < TimeSpan.Zero)
        {
            yield return $"{SectionName}:{nameof(CacheDuration)}: must not be negative (0 disables the cache)";
        }

        if (MaxCacheEntries < 1)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(MaxCacheEntries)}: must be at least 1 (was {MaxCacheEntries})");
        }

        if (AuthServId is { Length: > 0 } id && (id.Any(c => c <= ' ' || c > '~' || c is ';' or '(' or ')' or '"')))
        {
            yield return $"{SectionName}:{nameof(AuthServId)}: '{id}' must be a token (printable ASCII, no spaces, ';', '(', ')' or quotes)";
        }

        string? error = null;
        try
        {
            _ = ParseServers(DnsServers, $"{SectionName}:{nameof(DnsServers)}");
        }
        catch (FormatException ex)
        {
            error = ex.Message;
        }

        if (error is not null)
        {
            yield return error;
        }
    }

    /// <summary>The resolvers as endpoints (no port: 53); empty for none. All must share one port (ARSoft's client
    /// transports take one port for every server).</summary>
    internal static IReadOnlyList<IPEndPoint> ParseServers(string? list, string key)
    {
        var result = new List<IPEndPoint>();
        foreach (var entry in (list ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!IPEndPoint.TryParse(entry, out var endPoint))
            {
                throw new FormatException($"{key}: '{entry}' is not an IP address or ip:port");
            }

            result.Add(endPoint.Port == 0 ? new IPEndPoint(endPoint.Address, 53) : endPoint);
        }

        if (result.Select(e => e.Port).Distinct().Count() > 1)
        {
            throw new FormatException($"{key}: all resolvers must use the same port for SPF lookups");
        }

        return result;
    }
}
