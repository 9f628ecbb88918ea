using System.Net;
using MailMesh.Contracts;

namespace MailMesh.Policy.Content;

/// <summary>
/// One check of a message's content at the end of DATA (BDAT LAST, HTTP submission), after Policy's CheckMessage and
/// before the spool commit: DKIM/ARC/DMARC verification, a spam scanner (rspamd), a virus scanner (clamd). Ingress asks
/// every registered check through <c>ContentChecks</c>, in <see cref="Order"/>, once per transaction.
/// </summary>
/// <remarks>
/// A check that cannot decide (its engine is down, DNS failed) returns the configured behaviour for that case, which by
/// default is <see cref="ContentCheckResult.Refuse"/> with a 451 4.7.1: never a silent accept (ARCHITECTURE.md "never
/// accept unchecked"). A check that throws is treated as a 451 by <c>ContentChecks</c>.
/// </remarks>
public interface IContentCheck
{
    /// <summary>Short name for logs, metrics and spans ("dkim", "dmarc", "rspamd", "clamd").</summary>
    string Name { get; }

    /// <summary>Lower runs first: authentication (DKIM/ARC/DMARC) at 100, scanners at 200 and later.</summary>
    int Order { get; }

    /// <summary>
    /// The header fields this check stamps (e.g. X-Spam-Status): a client's own fields of these names are removed from
    /// a message the checks ran on, so that what a mailbox filter or the next hop reads is this server's verdict.
    /// </summary>
    IReadOnlyCollection<string> StampedFields => [];

    /// <summary>True when this check applies to the submission (e.g. authentication checks skip relay clients).</summary>
    bool AppliesTo(ContentCheckRequest request);

    Task<ContentCheckResult> CheckAsync(ContentCheckRequest request, CancellationToken cancellationToken);
}

/// <summary>The transaction and its content as the client sent it (before any header MailMesh adds).</summary>
public sealed class ContentCheckRequest
{
    public required IPAddress ClientAddress { get; init; }

    /// <summary>The EHLO/HELO name, null for HTTP submissions.</summary>
    public string? ClientHelo { get; init; }

    /// <summary>MAIL FROM, "" for the null reverse-path.</summary>
    public required string Sender { get; init; }

    public required IReadOnlyList<string> Recipients { get; init; }

    /// <summary>The SMTP AUTH user or API key name; null for an unauthenticated client.</summary>
    public string? AuthenticatedUser { get; init; }

    /// <summary>True when the client is in Policy:RelayNetworks or authenticated: a submitter, not a stranger.</summary>
    public required bool IsSubmitter { get; init; }

    /// <summary>The length in octets of the content <see cref="OpenContent"/> returns.</summary>
    public required long Length { get; init; }

    /// <summary>Opens the content (header section and body, CRLF line ends, dot-unstuffed) from its start; each call
    /// returns a new stream the caller disposes. Safe to call from several checks.</summary>
    public required Func<Stream> OpenContent { get; init; }
}

/// <summary>What one check concluded.</summary>
public sealed record ContentCheckResult
{
    /// <summary>Accepted, nothing to add.</summary>
    public static ContentCheckResult Pass { get; } = new();

    /// <summary>The refusal to give instead of 250 (a 4xx or 5xx with its enhanced code and reason); null to accept.</summary>
    public PolicyDecision? Refusal { get; init; }

    /// <summary>Header fields to prepend, each a complete field ending in CRLF (e.g. X-Spam-Status).</summary>
    public IReadOnlyList<string> Headers { get; init; } = [];

    /// <summary>
    /// RFC 8601 method results ("dkim=pass header.d=example.org header.s=s1", "dmarc=fail (p=quarantine) header.from=…")
    /// that go into the one Authentication-Results header MailMesh stamps.
    /// </summary>
    public IReadOnlyList<string> AuthenticationResults { get; init; } = [];

    /// <summary>Deliver to the recipient's \Junk folder instead of INBOX (DMARC p=quarantine, a spam verdict).</summary>
    public bool Junk { get; init; }

    /// <summary>A short reason for logs and the junk header ("dmarc p=quarantine", "rspamd score 7.2/6").</summary>
    public string? Reason { get; init; }

    public static ContentCheckResult Refuse(int code, string enhancedCode, string reason) =>
        new() { Refusal = new PolicyDecision { Accepted = false, ReplyCode = code, EnhancedCode = enhancedCode, Reason = reason }, Reason = reason };
}
