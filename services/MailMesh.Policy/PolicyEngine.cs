using System.Net;
using MailMesh.Contracts;
using MailMesh.Policy.Dnsbl;
using MailMesh.Policy.Spf;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Bounces;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy;

/// <summary>
/// Every accept/reject rule, as pure decisions over the request, the options and the shared policy store. Rate
/// counters live in the store, so a limit holds however many Policy replicas answer.
/// </summary>
internal sealed class PolicyEngine(
    IPolicyStore store,
    IMailStore mailStore,
    RelayRules relay,
    IOptions<PolicyOptions> options,
    IOptions<MailboxDomainsOptions> mailboxDomains,
    IOptions<SpfOptions> spfOptions,
    SpfChecker spf,
    DnsblChecker dnsbl,
    TimeProvider time,
    IOptions<ReturnPathOptions> returnPath)
{
    private readonly SpfOptions _spf = spfOptions.Value;
    private static readonly TimeSpan RateWindow = TimeSpan.FromMinutes(1);
    private readonly PolicyOptions _options = options.Value;

    /// <summary>
    /// DNS lists (Policy:Dnsbl), then the connection rate per client. Relay networks are exempt from both, as Postfix exempts <c>$mynetworks</c> from
    /// <c>smtpd_client_connection_rate_limit</c>: they are the applications MailMesh serves.
    /// </summary>
    public async Task<Verdict> CheckConnectionAsync(CheckConnection request, CancellationToken cancellationToken)
    {
        if (relay.IsRelayClient(request.ClientAddress))
        {
            return Verdict.Accept;
        }

        // Policy:Dnsbl (RFC 5782): 554 at connect (RFC 5321 §3.1) for a client the lists score past the threshold.
        if (dnsbl.Enabled && IPAddress.TryParse(request.ClientAddress, out var client)
            && await dnsbl.CheckAsync(client, cancellationToken) is { Refused: true } listed)
        {
            return Verdict.Refuse(554, "5.7.1", $"Service unavailable; client [{client}] blocked using {string.Join(", ", listed.Listed)}", "dnsbl");
        }

        if (_options.ConnectionsPerMinutePerIp == 0)
        {
            return Verdict.Accept;
        }

        var key = RelayRules.RateKey(request.ClientAddress);
        var count = await store.IncrementCounterAsync("conn:" + key, time.GetUtcNow(), RateWindow, 1, cancellationToken);
        return count > _options.ConnectionsPerMinutePerIp ? Verdict.TooManyConnections(key) : Verdict.Accept;
    }

    /// <summary>
    /// At RCPT: recipient limit, then relay permission (before anything that would reveal local state to a client
    /// that may not use this server at all), then, for a mailbox domain (Policy:MailboxDomains), whether the mail store
    /// can take it (account, alias or catch-all; enabled; under quota: one indexed query), then the suppression list.
    /// SPF (Policy:Spf) is decided here, at the first RCPT, for a client that may not relay: RFC 7208 §2.4 lets the
    /// check wait past MAIL FROM, and at RCPT it runs only for mail this server would take for its own domains (never
    /// for a client refused as a relay). Its result is cached, so later recipients cost nothing.
    /// </summary>
    public async Task<Verdict> CheckRecipientAsync(CheckRecipient request, CancellationToken cancellationToken)
    {
        if (!MailboxParts.TryParse(request.Recipient, out var recipient))
        {
            return Verdict.BadAddress();
        }

        if (request.AcceptedRecipients >= _options.MaxRecipientsPerMessage)
        {
            return Verdict.TooManyRecipients();
        }

        // The VERP return path (ReturnPath:Domain): bounces and complaints come back here from anyone, but only to an
        // address MailMesh issued (its HMAC checks out); any other address there is unknown (RFC 3463 5.1.1), so the
        // domain takes no backscatter.
        if (returnPath.Value.IsReturnPathDomain(recipient.Domain))
        {
            return returnPath.Value.TryRead(request.Recipient, out _) ? Verdict.Accept : Verdict.UnknownUser(request.Recipient);
        }

        // RFC 5321 §3.6.2: relaying only for clients this server serves (trusted networks, authenticated submitters)
        // or to domains it is the destination for. The decision uses the domain after the LAST '@'; a local part
        // that could route on ('%', '!', a quoted '@') would let a downstream MTA relay for an untrusted client.
        var mayRelay = request.AuthenticatedUser is not null || relay.IsRelayClient(request.ClientAddress);
        if (!mayRelay)
        {
            if (recipient.HasRoutingCharacters)
            {
                return Verdict.RoutingDenied();
            }

            if (!relay.IsLocalDomain(recipient.Domain) && !mailboxDomains.Value.Contains(recipient.Domain))
            {
                return Verdict.RelayDenied();
            }
        }

        string? traceHeader = null;
        if (!mayRelay && _spf.Enabled && IPAddress.TryParse(request.ClientAddress, out var client))
        {
            var evaluation = await spf.CheckAsync(client, request.Sender, request.Helo, cancellationToken);
            var refusal = SpfRefusal(evaluation, client);
            if (refusal is not null)
            {
                return refusal;
            }

            traceHeader = ReceivedSpfHeader.Format(evaluation, client, request.Sender, request.Helo, _spf.AuthServId!);
        }

        var verdict = await CheckMailboxAsync(recipient, cancellationToken);
        return traceHeader is null || !verdict.Decision.Accepted
            ? verdict
            : verdict with { Decision = verdict.Decision with { TraceHeader = traceHeader } };
    }

    /// <summary>RFC 7208 §8: the configured action for the result; softfail, neutral, none and pass are never refused.</summary>
    private Verdict? SpfRefusal(SpfEvaluation evaluation, IPAddress client) => evaluation.Result switch
    {
        SpfResult.Fail when _spf.FailAction == SpfAction.Reject => Verdict.SpfFailed(evaluation.Domain, client.ToString()),
        SpfResult.PermError when _spf.PermErrorAction == SpfAction.Reject => Verdict.SpfPermError(evaluation.Domain),
        SpfResult.TempError when _spf.TempErrorAction == SpfAction.Reject => Verdict.SpfTempError(evaluation.Domain),
        _ => null,
    };

    private async Task<Verdict> CheckMailboxAsync(MailboxParts recipient, CancellationToken cancellationToken)
    {
        var address = recipient.Normalized;
        if (mailboxDomains.Value.Contains(recipient.Domain))
        {
            // Nothing is accepted that cannot be stored (issue 9). The message size is not known yet (CheckRecipient
            // carries no SIZE), so a full mailbox is one at or past its quota.
            var check = await mailStore.CheckRecipientAsync(address, 0, cancellationToken);
            switch (check)
            {
                case RecipientCheck.UnknownUser:
                    return Verdict.UnknownUser(address);
                case RecipientCheck.OverQuota:
                    return Verdict.OverQuota(address);
                case RecipientCheck.Disabled:
                    return Verdict.MailboxDisabled(address);
            }
        }

        var suppression = await store.GetSuppressionAsync(address, cancellationToken);
        return suppression is null || !suppression.IsActiveAt(time.GetUtcNow())
            ? Verdict.Accept
            : Verdict.Suppressed(address, suppression.Reason);
    }

    /// <summary>At end of DATA: size, then the message rate of the client (relay networks exempt, as for connections).</summary>
    public async Task<Verdict> CheckMessageAsync(CheckMessage request, CancellationToken cancellationToken)
    {
        if (request.Size > _options.MaxMessageSize)
        {
            return Verdict.TooBig(_options.MaxMessageSize);
        }

        if (_options.MessagesPerMinutePerIp == 0 || relay.IsRelayClient(request.ClientAddress))
        {
            return Verdict.Accept;
        }

        var key = RelayRules.RateKey(request.ClientAddress);
        var count = await store.IncrementCounterAsync("msg:" + key, time.GetUtcNow(), RateWindow, 1, cancellationToken);
        return count > _options.MessagesPerMinutePerIp ? Verdict.TooManyMessages(key) : Verdict.Accept;
    }
}
