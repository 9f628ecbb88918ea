using System.Net;
using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Scanning;

/// <summary>Virus scanning with clamd's INSTREAM command at the end of DATA (section "Policy:Clamd").</summary>
public sealed class ClamdOptions : IValidatedOptions
{
    public static string SectionName => "Policy:Clamd";

    /// <summary>Scan mail with clamd. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary>clamd's TCPSocket as <c>host:port</c>, or its LocalSocket as <c>unix:/path</c>. Default <c>127.0.0.1:3310</c>.</summary>
    public string Address { get; set; } = "127.0.0.1:3310";

    /// <summary>Bound on one scan; past it the scanner counts as unavailable. With rspamd's, keep it under
    /// Policy:Content:Timeout (30 s), the bound on all content checks of a message.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Messages larger than this are not scanned (accepted and logged). Keep it at most clamd's StreamMaxLength
    /// (Debian's clamd.conf: 25M), or clamd ends the stream. Default 25 MiB.</summary>
    public long MaxSize { get; set; } = 25 * 1024 * 1024;

    /// <summary>Also scan mail from submitters (relay networks, authenticated clients). Default true.</summary>
    public bool ScanSubmitters { get; set; } = true;

    /// <summary>A virus found. Default <c>Reject</c> (550 5.7.1 "virus found: name").</summary>
    public ScanAction VirusAction { get; set; } = ScanAction.Reject;

    /// <summary>clamd down, timed out or answering an error: <c>TempFail</c> (default, 451 4.7.1), <c>Reject</c> or
    /// <c>Tag</c> (accept with X-Virus-Status: Unknown); never a silent accept.</summary>
    public ScanAction UnavailableAction { get; set; } = ScanAction.TempFail;

    public IEnumerable<string> Validate()
    {
        if (!TryParseAddress(Address, out _))
        {
            yield return $"{SectionName}:{nameof(Address)}: '{Address}' must be host:port or unix:/path";
        }

        foreach (var error in ScanOptionRules.Common(SectionName, Timeout, MaxSize, UnavailableAction))
        {
            yield return error;
        }

        if (VirusAction is not (ScanAction.Reject or ScanAction.TempFail or ScanAction.Junk or ScanAction.Tag))
        {
            yield return $"{SectionName}:{nameof(VirusAction)}: must be reject, tempfail, junk or tag";
        }
    }

    internal static bool TryParseAddress(string? address, out EndPoint endPoint)
    {
        endPoint = null!;
        if (string.IsNullOrWhiteSpace(address))
        {
            return false;
        }

        if (address.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = address["unix:".Length..];
            if (path.Length == 0 || !path.StartsWith('/'))
            {
                return false;
            }

            endPoint = new System.Net.Sockets.UnixDomainSocketEndPoint(path);
            return true;
        }

        if (IPEndPoint.TryParse(address, out var ip) && ip.Port != 0)
        {
            endPoint = ip;
            return true;
        }

        var colon = address.LastIndexOf(':');
        if (colon > 0 && int.TryParse(address.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            && Uri.CheckHostName(address[..colon]) == UriHostNameType.Dns)
        {
            endPoint = new DnsEndPoint(address[..colon], port);
            return true;
        }

        return false;
    }
}
