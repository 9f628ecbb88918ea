using System.Globalization;

namespace MailMesh.Policy.Scanning;

/// <summary>
/// What every scanner's section (<see cref="RspamdOptions"/>, <see cref="ClamdOptions"/>) has: on or off, a bound on one
/// scan, a size limit, whether submitters are scanned, and what a scanner that is down means. The defaults differ by
/// scanner and are given by each.
/// </summary>
public abstract class ScannerOptions
{
    private protected ScannerOptions(TimeSpan timeout, long maxSize, bool scanSubmitters)
    {
        Timeout = timeout;
        MaxSize = maxSize;
        ScanSubmitters = scanSubmitters;
    }

    /// <summary>Scan mail with this scanner. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary>Bound on one scan (connect, send, verdict); past it the scanner counts as unavailable. Keep the sum of
    /// the scanners' under Policy:Content:Timeout (30 s), the bound on all content checks of a message.</summary>
    public TimeSpan Timeout { get; set; }

    /// <summary>Messages larger than this are not scanned (accepted and logged).</summary>
    public long MaxSize { get; set; }

    /// <summary>Also scan mail from submitters (relay networks, authenticated clients).</summary>
    public bool ScanSubmitters { get; set; }

    /// <summary>The scanner down, timed out or answering nonsense: <c>TempFail</c> (default, 451 4.7.1), <c>Reject</c> or
    /// <c>Tag</c> (accept with the scanner's status header saying Unknown); never a silent accept.</summary>
    public ScanAction UnavailableAction { get; set; } = ScanAction.TempFail;

    /// <summary>True when the scanner is on and <paramref name="request"/> is one it scans (inbound, or a submission
    /// with <see cref="ScanSubmitters"/>).</summary>
    internal bool AppliesTo(Content.ContentCheckRequest request) => Enabled && (!request.IsSubmitter || ScanSubmitters);

    /// <summary>The failures of the settings every scanner has, named by key under <paramref name="section"/>.</summary>
    private protected IEnumerable<string> ValidateCommon(string section)
    {
        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromMinutes(5))
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{section}:Timeout: must be positive and at most 5 minutes (was {Timeout})");
        }

        if (MaxSize < 1)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{section}:MaxSize: must be at least 1 byte (was {MaxSize})");
        }

        if (UnavailableAction is not (ScanAction.TempFail or ScanAction.Reject or ScanAction.Tag))
        {
            yield return $"{section}:UnavailableAction: must be tempfail, reject or tag (an unscanned message is never accepted silently)";
        }
    }
}
