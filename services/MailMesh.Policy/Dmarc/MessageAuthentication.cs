using System.Globalization;
using MailMesh.Policy.Content;
using MailMesh.Policy.Dkim;
using MailMesh.Policy.Spf;
using Microsoft.Extensions.Options;
using MimeKit;

namespace MailMesh.Policy.Dmarc;

/// <summary>
/// Inbound authentication at the end of DATA, for mail from strangers (not relay clients, not authenticated): DKIM
/// (Policy:Dkim), ARC (Policy:Arc) and DMARC (Policy:Dmarc), in that order, over one parse of the message (MimeKit,
/// reading the content from its stream as needed: a large message is not loaded into memory). The results go into
/// the Authentication-Results header; DMARC's policy, when enforced, refuses (p=reject: 550 5.7.1) or sends the message
/// to \Junk (p=quarantine).
/// </summary>
internal sealed class MessageAuthentication(
    IOptions<DkimVerifyOptions> dkimOptions,
    IOptions<ArcVerifyOptions> arcOptions,
    IOptions<DmarcOptions> dmarcOptions,
    IOptions<SpfOptions> spfOptions,
    DkimVerification dkim,
    ArcVerification arc,
    DmarcEvaluator dmarc,
    SpfChecker spf) : IContentCheck
{
    private readonly DkimVerifyOptions _dkim = dkimOptions.Value;
    private readonly ArcVerifyOptions _arc = arcOptions.Value;
    private readonly DmarcOptions _dmarc = dmarcOptions.Value;
    private readonly SpfOptions _spf = spfOptions.Value;

    public string Name => "authentication";

    public int Order => 100;

    public bool AppliesTo(ContentCheckRequest request) =>
        !request.IsSubmitter && (_dkim.Enabled || _arc.Enabled || _dmarc.Enabled);

    public async Task<ContentCheckResult> CheckAsync(ContentCheckRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        await using var stream = request.OpenContent();
        using var message = await MimeMessage.LoadAsync(ParserOptions.Default, stream, persistent: true, cancellationToken);

        var results = new List<string>();
        IReadOnlyList<DkimOutcome> signatures = [];
        if (_dkim.Enabled || _dmarc.Enabled)
        {
            signatures = await dkim.VerifyAsync(message, cancellationToken);
            results.AddRange(signatures.Select(s => s.ToString()));
        }

        if (_arc.Enabled)
        {
            results.Add(await arc.VerifyAsync(message, cancellationToken));
        }

        if (!_dmarc.Enabled)
        {
            return new ContentCheckResult { AuthenticationResults = results };
        }

        // DMARC's SPF input: the result Policy:Spf cached at RCPT (or evaluated now when SPF checking is off, and then
        // reported here since ContentChecks reports it only when Policy:Spf is on).
        var evaluation = await spf.CheckAsync(request.ClientAddress, request.Sender, request.ClientHelo, cancellationToken);
        if (!_spf.Enabled)
        {
            results.Insert(0, $"spf={ReceivedSpfHeader.Keyword(evaluation.Result)} smtp.mailfrom={ContentChecks.Value(request.Sender.Length > 0 ? request.Sender : evaluation.Identity)}");
        }

        var outcome = FromDomain(message, out var problem) is { } from
            ? await dmarc.EvaluateAsync(from, signatures, evaluation, cancellationToken)
            : new DmarcOutcome(problem == "no From" ? "none" : "permerror", null, Comment: problem);
        results.Add(outcome.ToString());

        if (outcome.Result == "temperror" && _dmarc.TempErrorAction == DmarcTempErrorAction.Tempfail)
        {
            return ContentCheckResult.Refuse(451, "4.7.1", $"DMARC policy of {outcome.FromDomain} could not be checked, try again later");
        }

        if (!_dmarc.Enforce || outcome.Result != "fail")
        {
            return new ContentCheckResult { AuthenticationResults = results };
        }

        return outcome.Disposition switch
        {
            // RFC 7489 §6.6.4 / §10.3: reject at the end of DATA, with a reason naming DMARC.
            DmarcPolicy.Reject => ContentCheckResult.Refuse(550, "5.7.1", $"Message rejected per the DMARC policy of {outcome.FromDomain}"),
            DmarcPolicy.Quarantine => new ContentCheckResult
            {
                AuthenticationResults = results,
                Junk = true,
                Reason = "dmarc p=quarantine " + outcome.FromDomain,
            },
            _ => new ContentCheckResult { AuthenticationResults = results },
        };
    }

    /// <summary>The RFC5322.From domain (RFC 7489 §6.6.1), lower case, A-labels; null when there is no From, or more than
    /// one From field or domain (then <paramref name="problem"/> says which).</summary>
    private static string? FromDomain(MimeMessage message, out string? problem)
    {
        var fields = message.Headers.Count(h => h.Id == HeaderId.From);
        var domains = message.From.Mailboxes.Select(m => m.Domain).Where(d => !string.IsNullOrEmpty(d)).Select(Normalize).Distinct().ToList();
        (problem, var domain) = (fields, domains.Count) switch
        {
            (0, _) or (_, 0) => ("no From", (string?)null),
            (1, 1) => (null, domains[0]),
            _ => ("several From domains", null),
        };
        return domain;
    }

    private static string Normalize(string domain)
    {
        domain = domain.TrimEnd('.').ToLowerInvariant();
        try
        {
            return new IdnMapping().GetAscii(domain);
        }
        catch (ArgumentException)
        {
            return domain;
        }
    }
}
