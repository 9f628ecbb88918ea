using System.Globalization;
using MailMesh.Policy.Content;

namespace MailMesh.Policy.Scanning;

/// <summary>What MailMesh does with a scanner's verdict (Policy:Rspamd:*Action, Policy:Clamd:*Action).</summary>
public enum ScanAction
{
    /// <summary>Accept; the scanner's status header (X-Spam-Status: No, ...) is added.</summary>
    Accept,

    /// <summary>Accept and mark as spam: X-Spam-Flag: YES, X-Spam: Yes and the status header.</summary>
    Tag,

    /// <summary>As <see cref="Tag"/>, and deliver to the recipient's \Junk folder instead of INBOX.</summary>
    Junk,

    /// <summary>451 4.7.1: the client keeps the message and retries later.</summary>
    TempFail,

    /// <summary>550 5.7.1 with the reason: the client bounces the message to its sender.</summary>
    Reject,
}

/// <summary>Turns a scanner's verdict and the configured action into a <see cref="ContentCheckResult"/>.</summary>
internal static class ScanVerdict
{
    /// <summary>RFC 3463 5.7.1 / 4.7.1 "delivery not authorized, message refused".</summary>
    public static ContentCheckResult Apply(ScanAction action, string reason, IReadOnlyList<string> statusHeaders) => action switch
    {
        ScanAction.Reject => ContentCheckResult.Refuse(550, "5.7.1", reason),
        ScanAction.TempFail => ContentCheckResult.Refuse(451, "4.7.1", reason + ", try again later"),
        ScanAction.Junk => new ContentCheckResult { Headers = [.. SpamFlags, .. statusHeaders], Junk = true, Reason = reason },
        ScanAction.Tag => new ContentCheckResult { Headers = [.. SpamFlags, .. statusHeaders], Reason = reason },
        _ => statusHeaders.Count == 0 ? ContentCheckResult.Pass : new ContentCheckResult { Headers = statusHeaders },
    };

    /// <summary>The scanner could not decide: the configured <see cref="ScanAction"/> (TempFail, Reject, or Tag, which
    /// accepts with "<paramref name="statusHeader"/>: Unknown"); validation rules out a silent accept.</summary>
    public static ContentCheckResult Unavailable(ScanAction action, string reason, string statusHeader) => action switch
    {
        ScanAction.Reject => ContentCheckResult.Refuse(550, "5.7.1", reason),
        ScanAction.Tag => new ContentCheckResult { Headers = [Field(statusHeader, "Unknown, " + reason)], Reason = reason },
        _ => ContentCheckResult.Refuse(451, "4.7.1", reason + ", try again later"),
    };

    /// <summary>A result's keyword for metrics and spans: pass, tag, junk, tempfail, reject.</summary>
    public static string Keyword(ContentCheckResult result) =>
        result.Refusal is { } refusal ? refusal.ReplyCode >= 500 ? "reject" : "tempfail"
        : result.Junk ? "junk"
        : result.Headers.Any(h => h.StartsWith("X-Spam-Flag:", StringComparison.Ordinal)) ? "tag"
        : "pass";

    private static readonly string[] SpamFlags = ["X-Spam-Flag: YES\r\n", "X-Spam: Yes\r\n"];

    /// <summary>A header field, folded at spaces so no line passes 78 characters (RFC 5322 §2.1.1), ending in CRLF.</summary>
    public static string Field(string name, string value)
    {
        var line = new System.Text.StringBuilder(name).Append(':');
        var lineLength = line.Length;
        foreach (var word in value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (lineLength + 1 + word.Length > 78 && lineLength > name.Length + 1)
            {
                line.Append("\r\n\t").Append(word);
                lineLength = 1 + word.Length;
            }
            else
            {
                line.Append(' ').Append(word);
                lineLength += 1 + word.Length;
            }
        }

        return line.Append("\r\n").ToString();
    }

    /// <summary>A value for a header or a reply: printable ASCII only, at most <paramref name="max"/> characters.</summary>
    public static string Printable(string text, int max = 200)
    {
        var clean = new string([.. text.Select(c => c is >= ' ' and <= '~' ? c : ' ')]).Trim();
        return clean.Length <= max ? clean : clean[..max];
    }

    public static string Number(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
}
