using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>How a policy lookup ended.</summary>
internal enum PolicyDnsStatus
{
    /// <summary>Records of the type asked for.</summary>
    Answer,

    /// <summary>The name has no records of that type, or does not exist (NODATA / NXDOMAIN).</summary>
    NotFound,

    /// <summary>SERVFAIL, a timeout or another failure: nothing is known (a validating resolver answers a bogus zone this way).</summary>
    Failed,
}

/// <summary>
/// One policy lookup's answer; <see cref="Secure"/> is the AD bit (RFC 4035 §3.2.3), which means something only when
/// the resolver is the operator's validating one (<see cref="TlsPolicyDns.Validating"/>).
/// </summary>
internal sealed record PolicyDnsAnswer(PolicyDnsStatus Status, bool Secure, IReadOnlyList<DnsResourceRecord> Records, string? Error);

/// <summary>
/// The DNS lookups of the TLS policies (MTA-STS and TLS-RPT TXT records, DANE's MX and TLSA) against
/// <see cref="DeliveryTlsOptions.DnsServers"/>. With DANE on, every query sets DO (RFC 3225) so that the validating
/// resolver reports the AD bit; DnsClient caches answers for their TTL.
/// </summary>
internal sealed class TlsPolicyDns
{
    private readonly Lazy<LookupClient> _client;

    public TlsPolicyDns(IOptions<DeliveryOptions> options)
    {
        var tls = options.Value.Tls;
        Validating = tls.Dane.Enabled;
        _client = new Lazy<LookupClient>(() =>
        {
            var servers = tls.ParseDnsServers();
            var clientOptions = servers.Count > 0
                ? new LookupClientOptions(servers.Select(s => new NameServer(s)).ToArray())
                : new LookupClientOptions();
            clientOptions.UseCache = true;
            clientOptions.Timeout = tls.DnsTimeout;
            clientOptions.Retries = 1;
            clientOptions.ThrowDnsErrors = false;
            clientOptions.ContinueOnDnsError = false;
            clientOptions.ContinueOnEmptyResponse = false;
            clientOptions.UseTcpFallback = true;
            clientOptions.RequestDnsSecRecords = tls.Dane.Enabled;
            return new LookupClient(clientOptions);
        });
    }

    /// <summary>True when the configured resolver validates DNSSEC and its AD bit is trusted (Delivery:Tls:Dane:Enabled).</summary>
    public bool Validating { get; }

    public async Task<PolicyDnsAnswer> QueryAsync(string name, QueryType type, CancellationToken cancellationToken)
    {
        try
        {
            var response = await _client.Value.QueryAsync(name, type, QueryClass.IN, cancellationToken);
            var secure = Validating && response.Header.IsAuthenticData;
            var records = response.Answers.Where(r => r.RecordType == (ResourceRecordType)(int)type).ToList();
            return response.Header.ResponseCode switch
            {
                DnsHeaderResponseCode.NoError when records.Count > 0 => new(PolicyDnsStatus.Answer, secure, records, null),
                DnsHeaderResponseCode.NoError or DnsHeaderResponseCode.NotExistentDomain => new(PolicyDnsStatus.NotFound, secure, [], null),
                var code => new(PolicyDnsStatus.Failed, false, [], $"{type} lookup of {name}: {code}"),
            };
        }
        catch (DnsResponseException ex)
        {
            return new(PolicyDnsStatus.Failed, false, [], $"{type} lookup of {name}: {ex.Message}");
        }
        catch (SocketException ex)
        {
            return new(PolicyDnsStatus.Failed, false, [], $"{type} lookup of {name}: {ex.Message}");
        }
    }

    /// <summary>The TXT records of <paramref name="name"/>, each as its strings joined (RFC 7208 §3.3 style).</summary>
    public async Task<(PolicyDnsStatus Status, IReadOnlyList<string> Texts)> TxtAsync(string name, CancellationToken cancellationToken)
    {
        var answer = await QueryAsync(name, QueryType.TXT, cancellationToken);
        return (answer.Status, answer.Records.OfType<TxtRecord>().Select(r => string.Concat(r.Text)).ToList());
    }
}
