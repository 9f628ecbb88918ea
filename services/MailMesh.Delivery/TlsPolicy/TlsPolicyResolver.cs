using System.Net;
using DnsClient;
using MailMesh.Contracts;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>
/// What one exchanger gets: the TLS mode, the certificate judge, the policy that decided it (RFC 8460 policy types
/// "tlsa", "sts", "no-policy-found"), or a refusal (the host is not tried: an MTA-STS enforce policy does not list it,
/// or its TLSA records cannot be had securely).
/// </summary>
internal sealed record HostTls(TlsMode Mode, TlsTrust Trust, string PolicyType, IReadOnlyList<string> PolicyStrings)
{
    /// <summary>Why the host is not tried (the recipients are deferred with 4.7.5 when no other host takes them).</summary>
    public string? Refusal { get; init; }

    /// <summary>The RFC 8460 result type of <see cref="Refusal"/>.</summary>
    public string? RefusalResultType { get; init; }

    /// <summary>MTA-STS testing mode: deliver as <see cref="Mode"/> says, report what enforce would have refused.</summary>
    public bool Testing { get; init; }

    /// <summary>In testing mode: whether the host is one of the policy's mx patterns.</summary>
    public bool MxMatches { get; init; } = true;
}

/// <summary>The TLS decisions for one delivery to one domain: per exchanger, with the domain's default for the rest.</summary>
internal sealed class DomainTlsPolicy(string domain, IReadOnlyDictionary<string, HostTls> hosts, HostTls fallback)
{
    public string Domain { get; } = domain;

    public HostTls ForHost(string host) => hosts.TryGetValue(host.TrimEnd('.'), out var tls) ? tls : fallback;
}

/// <summary>
/// Decides each exchanger's TLS from DANE (RFC 7672) and MTA-STS (RFC 8461), DANE first (RFC 8461 §2: a host with
/// usable, DNSSEC-validated TLSA records is authenticated by DANE and MTA-STS does not apply to it), and records the
/// outcome of every new session for the TLS reports (RFC 8460).
/// </summary>
/// <remarks>
/// DANE (RFC 7672 §2.2): only when the domain's MX RRset is secure (the validating resolver's AD bit); then each host's
/// <c>_25._tcp.&lt;host&gt;</c> TLSA RRset: secure with usable DANE-TA/DANE-EE records → TLS authenticated by them
/// (no clear text, no PKIX); secure denial, an insecure answer, or only unusable records (PKIX-TA/EE, unknown
/// parameters, §3.1.3) → no DANE for the host (opportunistic TLS unless MTA-STS or the domain's own policy says more);
/// a failed lookup (SERVFAIL: a bogus zone at a validating resolver) → the host is not used (§2.2.1), the recipients
/// wait. A failed secure MX lookup defers the whole domain. A domain with its own entry in Delivery:Tls:Policies, and
/// address literals, are left to that policy.
/// </remarks>
internal sealed class TlsPolicyResolver(
    TlsPolicyDns dns, MtaStsResolver mtaSts, TlsTrust trust, TlsReportRecorder reports, IOptions<DeliveryOptions> options,
    ILogger<TlsPolicyResolver> logger)
{
    private readonly DeliveryTlsOptions _tls = options.Value.Tls;

    /// <summary>True when DANE or MTA-STS is on (otherwise every host gets the domain's configured mode).</summary>
    public bool IsActive => _tls.Dane.Enabled || _tls.MtaSts.Enabled;

    public async Task<DomainTlsPolicy> ResolveAsync(string domain, IReadOnlyList<MxHost> hosts, TlsMode baseMode, CancellationToken cancellationToken)
    {
        var fallback = new HostTls(baseMode, trust, "no-policy-found", []);
        var perHost = new Dictionary<string, HostTls>(StringComparer.OrdinalIgnoreCase);
        if (!IsActive || domain.StartsWith('[') || _tls.HasExplicitPolicy(domain))
        {
            return new DomainTlsPolicy(domain, perHost, fallback);
        }

        var names = hosts.Select(h => h.Name.TrimEnd('.')).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (_tls.Dane.Enabled)
        {
            var mx = await dns.QueryAsync(domain, QueryType.MX, cancellationToken);
            if (mx.Status == PolicyDnsStatus.Failed)
            {
                // RFC 7672 §2.2.1: an MX lookup that fails at the validating resolver (bogus or unreachable) defers.
                var refused = fallback with
                {
                    Mode = TlsMode.Verified,
                    PolicyType = "tlsa",
                    Refusal = $"DNSSEC-validated MX lookup of {domain} failed: {mx.Error}",
                    RefusalResultType = "dnssec-invalid",
                };
                TlsPolicyLog.DaneLookupFailed(logger, domain, mx.Error ?? "unknown");
                return new DomainTlsPolicy(domain, perHost, refused);
            }

            if (mx.Secure)
            {
                foreach (var name in names)
                {
                    if (await DaneForHostAsync(name, baseMode, cancellationToken) is { } dane)
                    {
                        perHost[name] = dane;
                    }
                }
            }
        }

        if (_tls.MtaSts.Enabled && names.Any(n => !perHost.ContainsKey(n)))
        {
            var lookup = await mtaSts.GetAsync(domain, cancellationToken);
            if (lookup.Policy is { Mode: MtaStsMode.Enforce or MtaStsMode.Testing } policy)
            {
                var strings = policy.Text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToList();
                foreach (var name in names.Where(n => !perHost.ContainsKey(n)))
                {
                    var matches = policy.Matches(name);
                    perHost[name] = policy.Mode == MtaStsMode.Enforce
                        ? new HostTls(TlsMode.Verified, trust.ForHost(), "sts", strings)
                        {
                            // RFC 8461 §4.1: only MX hosts that match the policy are candidates.
                            Refusal = matches ? null : $"MX host {name} is not allowed by the MTA-STS policy of {domain}",
                            RefusalResultType = matches ? null : "validation-failure",
                        }
                        : new HostTls(baseMode == TlsMode.None ? TlsMode.Opportunistic : baseMode, trust.ForHost(), "sts", strings)
                        {
                            Testing = true,
                            MxMatches = matches,
                        };
                }
            }
            else if (lookup.FetchError is not null)
            {
                TlsPolicyLog.MtaStsFetchFailed(logger, domain, lookup.FetchError);
                reports.Failure(domain, "sts", [], "sts-policy-fetch-error", null, null, lookup.FetchError);
            }
        }

        return new DomainTlsPolicy(domain, perHost, fallback);
    }

    private async Task<HostTls?> DaneForHostAsync(string host, TlsMode baseMode, CancellationToken cancellationToken)
    {
        var tlsa = await dns.QueryAsync($"_25._tcp.{host}", QueryType.TLSA, cancellationToken);
        switch (tlsa.Status)
        {
            case PolicyDnsStatus.Failed:
                // RFC 7672 §2.2.1: a TLSA lookup that fails (not a secure or insecure denial) makes the host unusable.
                TlsPolicyLog.DaneLookupFailed(logger, host, tlsa.Error ?? "unknown");
                return new HostTls(TlsMode.Verified, trust, "tlsa", [])
                {
                    Refusal = $"TLSA lookup of _25._tcp.{host} failed: {tlsa.Error}",
                    RefusalResultType = "dnssec-invalid",
                };
            case PolicyDnsStatus.Answer when tlsa.Secure:
                var records = tlsa.Records.OfType<DnsClient.Protocol.TlsaRecord>()
                    .Select(r => new TlsaRecord((byte)r.CertificateUsage, (byte)r.Selector, (byte)r.MatchingType, r.CertificateAssociationData.ToArray()))
                    .ToList();
                var usable = records.Where(r => r.IsUsable).ToList();
                if (usable.Count == 0)
                {
                    // RFC 7672 §3.1.3 / §2.2: only unusable records: no authentication, opportunistic TLS.
                    return null;
                }

                return new HostTls(TlsMode.Verified, trust.ForDane(new DaneRequirement(host, usable)), "tlsa", records.Select(r => r.ToString()).ToList());
            default:
                return null;
        }
    }

    /// <summary>
    /// Records a new session's TLS outcome (RFC 8460): called once per connection attempt to an exchanger, with the open
    /// connection or the enhanced status code of its failure.
    /// </summary>
    public void Opened(string domain, HostTls tls, string host, IPAddress address, SmtpConnection? connection, string? failureCode)
    {
        if (!reports.IsEnabled)
        {
            return;
        }

        var ip = address.ToString();
        if (connection is not null)
        {
            if (tls.Testing && !tls.MxMatches)
            {
                reports.Failure(domain, tls.PolicyType, tls.PolicyStrings, "validation-failure", host, ip, $"MX host {host} is not in the policy");
            }
            else if (tls.PolicyType != "no-policy-found" && !connection.IsTls)
            {
                reports.Failure(domain, tls.PolicyType, tls.PolicyStrings, "starttls-not-supported", host, ip, null);
            }
            else if (tls.PolicyType != "no-policy-found" && !connection.IsVerified)
            {
                var check = tls.Trust.LastCheck;
                reports.Failure(domain, tls.PolicyType, tls.PolicyStrings, check?.ResultType ?? "validation-failure", host, ip, check?.Problem);
            }
            else
            {
                reports.Success(domain, tls.PolicyType, tls.PolicyStrings);
            }

            return;
        }

        switch (failureCode)
        {
            case "4.7.4":
                reports.Failure(domain, tls.PolicyType, tls.PolicyStrings, "starttls-not-supported", host, ip, null);
                break;
            case "4.7.5":
                var check = tls.Trust.LastCheck;
                reports.Failure(domain, tls.PolicyType, tls.PolicyStrings, check?.ResultType ?? "validation-failure", host, ip, check?.Problem);
                break;
        }
    }

    /// <summary>Records a host that was not tried because of its policy.</summary>
    public void Refused(string domain, HostTls tls, string host, string? address) =>
        reports.Failure(domain, tls.PolicyType, tls.PolicyStrings, tls.RefusalResultType ?? "validation-failure", host, address, tls.Refusal);
}

internal static partial class TlsPolicyLog
{
    [LoggerMessage(EventId = 5301, Level = LogLevel.Warning, Message = "DNSSEC-validated lookup for {Name} failed: {Error}")]
    public static partial void DaneLookupFailed(ILogger logger, string name, string error);

    [LoggerMessage(EventId = 5302, Level = LogLevel.Debug, Message = "MTA-STS policy of {Domain} could not be fetched: {Error}")]
    public static partial void MtaStsFetchFailed(ILogger logger, string domain, string error);

    [LoggerMessage(EventId = 5303, Level = LogLevel.Debug, Message = "Exchanger {Host} not tried: {Reason}")]
    public static partial void HostRefused(ILogger logger, string host, string reason);
}
