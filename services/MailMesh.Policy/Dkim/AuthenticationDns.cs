using DnsClient;
using MailMesh.Policy.Spf;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Dkim;

/// <summary>What a TXT lookup found: records, none (NXDOMAIN or no TXT), or a temporary failure (timeout, SERVFAIL).</summary>
internal enum TxtStatus
{
    Found,
    None,
    TempError,
}

internal sealed record TxtLookup(TxtStatus Status, IReadOnlyList<string> Records)
{
    public static TxtLookup NoRecords { get; } = new(TxtStatus.None, []);

    public static TxtLookup Failed { get; } = new(TxtStatus.TempError, []);
}

/// <summary>
/// The TXT lookups of inbound authentication (DKIM keys at selector._domainkey.domain, DMARC records at _dmarc.domain),
/// with DnsClient over <see cref="DkimVerifyOptions.DnsServers"/> (else Policy:Spf's, else Dns:Servers, else the
/// system's), each query bounded by <see cref="DkimVerifyOptions.Timeout"/>. Answers are cached for their TTL
/// (DnsClient's cache; failures are not cached, so a retry asks again).
/// </summary>
internal sealed class AuthenticationDns
{
    private readonly LookupClient _client;

    public AuthenticationDns(IOptions<DkimVerifyOptions> options, IOptions<SpfOptions> spf)
    {
        var value = options.Value;
        var list = string.IsNullOrWhiteSpace(value.DnsServers) ? spf.Value.DnsServers : value.DnsServers;
        var servers = SpfOptions.ParseServers(list, $"{DkimVerifyOptions.SectionName}:{nameof(DkimVerifyOptions.DnsServers)}");
        var clientOptions = servers.Count > 0
            ? new LookupClientOptions([.. servers.Select(s => new NameServer(s))])
            : new LookupClientOptions();
        clientOptions.UseCache = true;
        clientOptions.Timeout = value.Timeout;
        clientOptions.Retries = 1;
        clientOptions.ThrowDnsErrors = false;
        clientOptions.ContinueOnDnsError = false;
        clientOptions.ContinueOnEmptyResponse = false;
        clientOptions.UseTcpFallback = true;
        clientOptions.EnableAuditTrail = false;
        _client = new LookupClient(clientOptions);
    }

    /// <summary>Every TXT record at <paramref name="name"/>, each one's strings joined (RFC 6376 §3.6.2.2, RFC 7489 §6.1).</summary>
    public async Task<TxtLookup> TxtAsync(string name, CancellationToken cancellationToken)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _client.QueryAsync(name, QueryType.TXT, QueryClass.IN, cancellationToken);
        }
        catch (DnsResponseException)
        {
            return TxtLookup.Failed;
        }

        if (response.HasError)
        {
            return response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain ? TxtLookup.NoRecords : TxtLookup.Failed;
        }

        var records = response.Answers.TxtRecords().Select(r => string.Concat(r.Text)).ToList();
        return records.Count == 0 ? TxtLookup.NoRecords : new TxtLookup(TxtStatus.Found, records);
    }
}
