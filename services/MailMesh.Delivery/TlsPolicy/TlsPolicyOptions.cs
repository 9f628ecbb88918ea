namespace MailMesh.Delivery;

/// <summary>DANE for SMTP (RFC 7672), section "Delivery:Tls:Dane".</summary>
public sealed class DaneOptions
{
    /// <summary>
    /// Look up TLSA records (<c>_25._tcp.&lt;mx host&gt;</c>) and authenticate exchangers that publish usable ones.
    /// Needs <see cref="DeliveryTlsOptions.DnsServers"/> naming a DNSSEC-validating resolver: only its AD bit is trusted.
    /// Default: off.
    /// </summary>
    public bool Enabled { get; set; }
}

/// <summary>MTA-STS (RFC 8461), section "Delivery:Tls:MtaSts".</summary>
public sealed class MtaStsOptions
{
    /// <summary>Discover (<c>_mta-sts</c> TXT), fetch and apply recipient domains' MTA-STS policies. Default: off.</summary>
    public bool Enabled { get; set; }

    /// <summary>Time for the whole HTTPS policy fetch (RFC 8461 §3.3 asks senders to bound it).</summary>
    public TimeSpan FetchTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Largest policy body accepted (RFC 8461 §3.2: policies are limited to 64 KiB).</summary>
    public int MaxPolicyBytes { get; set; } = 64 * 1024;

    /// <summary>Policies kept in the in-process cache (each for its max_age, RFC 8461 §5.1).</summary>
    public int CacheEntries { get; set; } = 10_000;

    /// <summary>
    /// The longest a fetched policy is kept whatever its max_age says (RFC 8461 §3.2: max_age is at most 31557600 s).
    /// </summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromSeconds(31_557_600);

    /// <summary>
    /// After a failed fetch with no cached policy, the domain is not asked again for this long (the failure is
    /// remembered, mail goes on without a policy, RFC 8461 §5.1).
    /// </summary>
    public TimeSpan FailureCacheTime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Optional PEM bundle of extra roots trusted for the HTTPS policy fetches and TLS report POSTs only (private CAs,
    /// tests). Off by default: the web server's certificate must chain to a system root (RFC 8461 §3.3).
    /// </summary>
    public string? ExtraTrustedRootsPath { get; set; }

    /// <summary>
    /// TESTS ONLY: fetch every policy from this "host:port" instead of <c>mta-sts.&lt;domain&gt;:443</c> (the TLS name
    /// checked is still <c>mta-sts.&lt;domain&gt;</c>). Never set in production.
    /// </summary>
    public string? TestOnlyPolicyEndpoint { get; set; }

    internal IEnumerable<string> Validate()
    {
        if (FetchTimeout <= TimeSpan.Zero)
        {
            yield return "Delivery:Tls:MtaSts:FetchTimeout: must be positive";
        }

        if (MaxPolicyBytes < 256)
        {
            yield return "Delivery:Tls:MtaSts:MaxPolicyBytes: must be at least 256";
        }

        if (CacheEntries < 1)
        {
            yield return "Delivery:Tls:MtaSts:CacheEntries: must be at least 1";
        }

        if (MaxAge <= TimeSpan.Zero)
        {
            yield return "Delivery:Tls:MtaSts:MaxAge: must be positive";
        }

        if (FailureCacheTime < TimeSpan.Zero)
        {
            yield return "Delivery:Tls:MtaSts:FailureCacheTime: must not be negative";
        }

        if (ExtraTrustedRootsPath is { Length: > 0 } path && !File.Exists(path))
        {
            yield return $"Delivery:Tls:MtaSts:ExtraTrustedRootsPath: file '{path}' does not exist";
        }

        if (TestOnlyPolicyEndpoint is { Length: > 0 } endpoint && !HostPort.TryParse(endpoint, out _, out _))
        {
            yield return $"Delivery:Tls:MtaSts:TestOnlyPolicyEndpoint: '{endpoint}' is not host:port";
        }
    }
}

/// <summary>SMTP TLS reporting (RFC 8460), section "Delivery:Tls:Reporting".</summary>
public sealed class TlsReportingOptions
{
    /// <summary>Record TLS outcomes per policy domain (in the spool, shared by every replica). Default: off.</summary>
    public bool Enabled { get; set; }

    /// <summary>Send the daily aggregate reports to the <c>rua</c> of <c>_smtp._tls.&lt;domain&gt;</c> (needs <see cref="Enabled"/>).</summary>
    public bool SendReports { get; set; }

    /// <summary>The sending organisation named in reports ("organization-name", RFC 8460 §4.4).</summary>
    public string OrganizationName { get; set; } = "MailMesh";

    /// <summary>The reports' "contact-info" and the From address of reports sent by mail (RFC 8460 §4.4, §5.3).</summary>
    public string ContactInfo { get; set; } = "postmaster@localhost";

    /// <summary>How often the counts of this replica are added to the shared aggregate (and due reports looked for).</summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Time of day (UTC) after which the previous UTC day's reports are built and sent.</summary>
    public TimeSpan SendAfter { get; set; } = TimeSpan.FromMinutes(30);

    internal IEnumerable<string> Validate()
    {
        if (SendReports && !Enabled)
        {
            yield return "Delivery:Tls:Reporting:SendReports: needs Delivery:Tls:Reporting:Enabled";
        }

        if (string.IsNullOrWhiteSpace(OrganizationName))
        {
            yield return "Delivery:Tls:Reporting:OrganizationName: must not be empty";
        }

        if (string.IsNullOrWhiteSpace(ContactInfo))
        {
            yield return "Delivery:Tls:Reporting:ContactInfo: must not be empty";
        }

        if (FlushInterval <= TimeSpan.Zero)
        {
            yield return "Delivery:Tls:Reporting:FlushInterval: must be positive";
        }

        if (SendAfter < TimeSpan.Zero || SendAfter >= TimeSpan.FromDays(1))
        {
            yield return "Delivery:Tls:Reporting:SendAfter: must be a time of day (00:00:00 to 23:59:59)";
        }
    }
}

/// <summary>"host:port" as the TLS policy settings take it.</summary>
internal static class HostPort
{
    public static bool TryParse(string text, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out port) ||
            port is < 1 or > 65535)
        {
            return false;
        }

        host = text[..colon].Trim('[', ']');
        return host.Length > 0;
    }
}
