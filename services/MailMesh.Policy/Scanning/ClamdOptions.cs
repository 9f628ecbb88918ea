using System.Net;
using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Scanning;

/// <summary>
/// Virus scanning with clamd's INSTREAM command at the end of DATA (section "Policy:Clamd"). Defaults: Timeout 10 s,
/// MaxSize 25 MiB (keep it at most clamd's StreamMaxLength, Debian's clamd.conf: 25M, or clamd ends the stream),
/// ScanSubmitters true.
/// </summary>
public sealed class ClamdOptions() : ScannerOptions(TimeSpan.FromSeconds(10), 25 * 1024 * 1024, scanSubmitters: true), IValidatedOptions
{
    public static string SectionName => "Policy:Clamd";

    /// <summary>clamd's TCPSocket as <c>host:port</c>, or its LocalSocket as <c>unix:/path</c>. Default <c>127.0.0.1:3310</c>.</summary>
    public string Address { get; set; } = "127.0.0.1:3310";

    /// <summary>A virus found. Default <c>Reject</c> (550 5.7.1 "virus found: name").</summary>
    public ScanAction VirusAction { get; set; } = ScanAction.Reject;

    public IEnumerable<string> Validate()
    {
        if (!TryParseAddress(Address, out _))
        {
            yield return $"{SectionName}:{nameof(Address)}: '{Address}' must be host:port or unix:/path";
        }

        foreach (var error in ValidateCommon(SectionName))
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
