using MailMesh.Policy.Dkim;
using MailMesh.Policy.Spf;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Dmarc;

/// <summary>One DMARC evaluation: result, the RFC5322.From domain, the policy found and the disposition to apply.</summary>
internal sealed record DmarcOutcome(string Result, string? FromDomain, DmarcPolicy? Policy = null, DmarcPolicy Disposition = DmarcPolicy.None, string? Comment = null)
{
    /// <summary>"dmarc=fail (p=reject dis=reject) header.from=example.com".</summary>
    public override string ToString()
    {
        var text = "dmarc=" + Result;
        var comment = Policy is { } p ? $"p={Name(p)} dis={Name(Disposition)}" : null;
        comment = Comment is null ? comment : comment is null ? Comment : comment + "; " + Comment;
        if (comment is not null)
        {
            text += " (" + comment + ")";
        }

        return FromDomain is null ? text : text + " header.from=" + Content.ContentChecks.Value(FromDomain);
    }

    private static string Name(DmarcPolicy policy) => policy switch
    {
        DmarcPolicy.Reject => "reject",
        DmarcPolicy.Quarantine => "quarantine",
        _ => "none",
    };
}

/// <summary>
/// RFC 7489 §6.6: the policy record at _dmarc.&lt;From domain&gt;, else at _dmarc.&lt;organizational domain&gt; (its sp= then
/// applies when present), identifier alignment of the DKIM passes (adkim) and the SPF pass (aspf), relaxed (same
/// organizational domain) or strict (same domain), and the disposition after pct= sampling (§6.6.4: a message not
/// sampled gets the next lower policy).
/// </summary>
/// <remarks>
/// A failure that an aligned DKIM or SPF temperror could have turned into a pass is reported as temperror, never as a
/// fail: a DNS blip must not reject a legitimate message from a p=reject domain. Several DMARC records at one name end
/// discovery with no policy (§6.6.3), an invalid one is permerror.
/// </remarks>
internal sealed class DmarcEvaluator
{
    private readonly AuthenticationDns _dns;
    private readonly Lazy<PublicSuffixList> _suffixes;

    public DmarcEvaluator(AuthenticationDns dns, IOptions<DmarcOptions> options)
    {
        _dns = dns;
        var path = options.Value.PublicSuffixList;
        _suffixes = new Lazy<PublicSuffixList>(() => PublicSuffixList.Load(path));
    }

    /// <summary>Sampling for pct=; tests fix it.</summary>
    internal Func<int> Percentile { get; set; } = () => Random.Shared.Next(100);

    public string OrganizationalDomain(string domain) => _suffixes.Value.OrganizationalDomain(domain);

    public async Task<DmarcOutcome> EvaluateAsync(string fromDomain, IReadOnlyList<DkimOutcome> dkim, SpfEvaluation? spf, CancellationToken cancellationToken)
    {
        var organizational = OrganizationalDomain(fromDomain);
        var (status, record, atOrganizational) = await DiscoverAsync(fromDomain, organizational, cancellationToken);
        switch (status)
        {
            case TxtStatus.TempError:
                return new DmarcOutcome("temperror", fromDomain, Comment: "DMARC record lookup failed");
            case TxtStatus.None:
                return new DmarcOutcome("none", fromDomain);
        }

        if (record is null)
        {
            return new DmarcOutcome("permerror", fromDomain, Comment: "invalid DMARC record");
        }

        var policy = atOrganizational && record.SubdomainPolicy is { } sp ? sp : record.Policy;
        var dkimAligned = dkim.Where(d => d.Domain is not null && Aligned(d.Domain, fromDomain, organizational, record.StrictDkim)).ToList();
        var spfAligned = spf is not null && Aligned(spf.Domain, fromDomain, organizational, record.StrictSpf);
        if (dkimAligned.Exists(d => d.Result == "pass") || (spfAligned && spf!.Result == SpfResult.Pass))
        {
            return new DmarcOutcome("pass", fromDomain, policy, DmarcPolicy.None);
        }

        if (dkimAligned.Exists(d => d.Result == "temperror") || (spfAligned && spf!.Result == SpfResult.TempError))
        {
            return new DmarcOutcome("temperror", fromDomain, policy, DmarcPolicy.None, "an aligned identifier could not be checked");
        }

        var disposition = policy;
        if (record.Percent < 100 && Percentile() >= record.Percent)
        {
            disposition = policy == DmarcPolicy.Reject ? DmarcPolicy.Quarantine : DmarcPolicy.None;
        }

        return new DmarcOutcome("fail", fromDomain, policy, disposition);
    }

    private bool Aligned(string domain, string fromDomain, string fromOrganizational, bool strict)
    {
        domain = domain.TrimEnd('.').ToLowerInvariant();
        return strict ? domain == fromDomain : domain == fromDomain || OrganizationalDomain(domain) == fromOrganizational;
    }

    private async Task<(TxtStatus Status, DmarcRecord? Record, bool AtOrganizational)> DiscoverAsync(
        string fromDomain, string organizational, CancellationToken cancellationToken)
    {
        var (status, text) = await RecordAtAsync(fromDomain, cancellationToken);
        var atOrganizational = false;
        if (status == TxtStatus.None && organizational != fromDomain)
        {
            (status, text) = await RecordAtAsync(organizational, cancellationToken);
            atOrganizational = true;
        }

        return (status, text is null ? null : DmarcRecord.Parse(text), atOrganizational);
    }

    /// <summary>The one DMARC record at _dmarc.<paramref name="domain"/>: none when there is none or more than one.</summary>
    private async Task<(TxtStatus Status, string? Text)> RecordAtAsync(string domain, CancellationToken cancellationToken)
    {
        var lookup = await _dns.TxtAsync("_dmarc." + domain, cancellationToken);
        if (lookup.Status == TxtStatus.TempError)
        {
            return (TxtStatus.TempError, null);
        }

        var records = lookup.Records.Where(DmarcRecord.IsDmarc).ToList();
        return records.Count == 1 ? (TxtStatus.Found, records[0]) : (TxtStatus.None, null);
    }
}
