namespace MailMesh.Delivery;

/// <summary>How much TLS a destination gets (the Postfix <c>smtp_tls_security_level</c> levels MailMesh implements).</summary>
public enum TlsMode
{
    /// <summary>Never STARTTLS, even when offered.</summary>
    None,

    /// <summary>
    /// STARTTLS when the server offers it, any certificate accepted; clear text when it is not offered, refused, or
    /// the handshake fails (then the destination is retried in clear text on a new connection, as Postfix does).
    /// RFC 3207 §4.1, RFC 7435 (opportunistic security).
    /// </summary>
    Opportunistic,

    /// <summary>TLS must be negotiated; any certificate is accepted (Postfix "encrypt").</summary>
    Required,

    /// <summary>
    /// TLS with a certificate that chains to a trusted root and names the MX host (RFC 6125 §6 DNS-ID / CN-ID
    /// matching against the MX name, as RFC 8689 §4.2.1 and RFC 8461 §4.2 require; Postfix "secure" with
    /// <c>smtp_tls_secure_cert_match = hostname</c>).
    /// </summary>
    Verified,
}

/// <summary>Outbound TLS settings (section "Delivery:Tls").</summary>
public sealed class DeliveryTlsOptions
{
    /// <summary>Policy for destinations without an entry in <see cref="Policies"/>. Default: opportunistic.</summary>
    public TlsMode Mode { get; set; } = TlsMode.Opportunistic;

    /// <summary>
    /// Per recipient domain policy, e.g. <c>Delivery:Tls:Policies:example.com = verified</c>. A key starting with a
    /// dot (".example.com") matches every subdomain of example.com. Keys are case-insensitive.
    /// </summary>
    public Dictionary<string, TlsMode> Policies { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Optional PEM bundle of additional trust anchors for <see cref="TlsMode.Verified"/> (private CAs, tests). A
    /// certificate that does not chain to the system roots is accepted when it chains to one of these.
    /// </summary>
    public string? TrustedCertificatesPath { get; set; }

    /// <summary>Time for the TLS handshake after the 220 to STARTTLS (Postfix smtp_starttls_timeout: 300 s).</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// DNS servers (comma-separated "ip" or "ip:port") for the TLS policy lookups: MTA-STS and TLS-RPT TXT records and,
    /// when <see cref="DaneOptions.Enabled"/>, the DNSSEC-checked MX and TLSA lookups. Empty: the system's resolvers.
    /// </summary>
    public string? DnsServers { get; set; }

    /// <summary>Time to wait for one policy lookup answer (each is retried once).</summary>
    public TimeSpan DnsTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>DANE for SMTP (RFC 7672): section "Delivery:Tls:Dane".</summary>
    public DaneOptions Dane { get; set; } = new();

    /// <summary>MTA-STS (RFC 8461): section "Delivery:Tls:MtaSts".</summary>
    public MtaStsOptions MtaSts { get; set; } = new();

    /// <summary>TLS reporting (RFC 8460): section "Delivery:Tls:Reporting".</summary>
    public TlsReportingOptions Reporting { get; set; } = new();

    /// <summary>True when <paramref name="domain"/> has its own entry in <see cref="Policies"/> (the operator's choice wins over DANE and MTA-STS).</summary>
    public bool HasExplicitPolicy(string domain)
    {
        ArgumentNullException.ThrowIfNull(domain);
        var name = domain.TrimEnd('.');
        if (Policies.ContainsKey(name))
        {
            return true;
        }

        for (var dot = name.IndexOf('.', StringComparison.Ordinal); dot >= 0; dot = name.IndexOf('.', dot + 1))
        {
            if (Policies.ContainsKey(name[dot..]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The parsed <see cref="DnsServers"/>; empty means the system resolvers.</summary>
    internal IReadOnlyList<System.Net.IPEndPoint> ParseDnsServers()
    {
        var result = new List<System.Net.IPEndPoint>();
        foreach (var entry in (DnsServers ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (System.Net.IPEndPoint.TryParse(entry, out var endPoint))
            {
                result.Add(endPoint.Port == 0 ? new System.Net.IPEndPoint(endPoint.Address, 53) : endPoint);
            }
        }

        return result;
    }

    /// <summary>The policy for a recipient domain: an exact entry, then ".parent" entries from the closest, then <see cref="Mode"/>.</summary>
    public TlsMode PolicyFor(string domain)
    {
        ArgumentNullException.ThrowIfNull(domain);
        var name = domain.TrimEnd('.');
        if (Policies.TryGetValue(name, out var exact))
        {
            return exact;
        }

        for (var dot = name.IndexOf('.', StringComparison.Ordinal); dot >= 0; dot = name.IndexOf('.', dot + 1))
        {
            if (Policies.TryGetValue(name[dot..], out var parent))
            {
                return parent;
            }
        }

        return Mode;
    }

    internal IEnumerable<string> Validate()
    {
        if (!Enum.IsDefined(Mode))
        {
            yield return "Delivery:Tls:Mode: must be none, opportunistic, required or verified";
        }

        foreach (var (domain, mode) in Policies)
        {
            if (string.IsNullOrWhiteSpace(domain) || domain.Any(c => c <= ' ' || c == '@'))
            {
                yield return $"Delivery:Tls:Policies:{domain}: the key must be a domain (or .domain for its subdomains)";
            }
            else if (!Enum.IsDefined(mode))
            {
                yield return $"Delivery:Tls:Policies:{domain}: must be none, opportunistic, required or verified";
            }
        }

        if (TrustedCertificatesPath is { Length: > 0 } path && !File.Exists(path))
        {
            yield return $"Delivery:Tls:TrustedCertificatesPath: file '{path}' does not exist";
        }

        if (HandshakeTimeout <= TimeSpan.Zero)
        {
            yield return "Delivery:Tls:HandshakeTimeout: must be positive";
        }

        foreach (var entry in (DnsServers ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!System.Net.IPEndPoint.TryParse(entry, out _))
            {
                yield return $"Delivery:Tls:DnsServers: '{entry}' is not an IP address or ip:port";
            }
        }

        if (DnsTimeout <= TimeSpan.Zero)
        {
            yield return "Delivery:Tls:DnsTimeout: must be positive";
        }

        if (Dane.Enabled && string.IsNullOrWhiteSpace(DnsServers))
        {
            // RFC 7672 §2.1 / RFC 4033 §4.9.3: the AD bit is only worth trusting from a validating resolver the
            // operator chose (normally on the same host), never from whatever /etc/resolv.conf names.
            yield return "Delivery:Tls:Dane:Enabled: needs Delivery:Tls:DnsServers naming a DNSSEC-validating resolver";
        }

        foreach (var error in MtaSts.Validate())
        {
            yield return error;
        }

        foreach (var error in Reporting.Validate())
        {
            yield return error;
        }
    }
}
