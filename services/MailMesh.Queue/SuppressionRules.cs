using MailMesh.Contracts;
using MailMesh.Storage;

namespace MailMesh.Queue;

/// <summary>
/// Which delivery results put the recipient on the suppression list (Queue:SuppressHardBounces). Only a permanent
/// refusal of the recipient itself, said by the destination: a 5xx reply to RCPT TO whose RFC 3463 status is a
/// recipient address status. Never:
/// <list type="bullet">
/// <item>the sender's address statuses X.1.7 (bad sender mailbox syntax) and X.1.8 (bad sender system address), nor
/// any reply to MAIL FROM, which is about the sender or the transaction, not this recipient;</item>
/// <item>a reply to the end of data, which answers for every recipient of the transaction at once;</item>
/// <item>a result MailMesh made up (<see cref="ReplyStage.Local"/>): one NXDOMAIN or null MX from our own DNS lookup,
/// a connection or TLS failure, a local refusal or configuration error. These can be wrong or passing, and a wrong
/// suppression silently drops mail to a good address until someone removes it;</item>
/// <item>other permanent failures (mailbox full 5.2.2, policy 5.7.x, content 5.6.x), which say nothing lasting about
/// the address.</item>
/// </list>
/// Which refusals are about the address is the bounce class's to say (Queue:SuppressBounceClasses, by default
/// InvalidRecipient and BadDomain): a 550 5.7.1 spam or reputation block never suppresses the recipient, whatever its
/// words. A result without a class (from a Delivery older than the classifier, or Mailbox) falls back to the RFC 3463
/// recipient address statuses below.
/// </summary>
internal static class SuppressionRules
{
    /// <summary>
    /// RFC 3463 §3.2 destination address statuses that say the address will not work next time either: X.1.1 bad
    /// destination mailbox, X.1.2 bad destination system, X.1.3 bad destination mailbox syntax, X.1.6 mailbox moved
    /// (no forwarding), and X.1.10 recipient address has null MX (RFC 7505 §4.2, when a remote relay reports it).
    /// </summary>
    private static readonly HashSet<string> RecipientStatuses = new(StringComparer.Ordinal) { "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10" };

    /// <summary>Whether <paramref name="result"/>, which moved its recipient to <paramref name="update"/>'s state, suppresses the address.</summary>
    /// <param name="classes">The suppressing bounce classes (Queue:SuppressBounceClasses); null for the default ones.</param>
    public static bool ShouldSuppress(RecipientResult? result, RecipientUpdate update, IReadOnlySet<BounceClass>? classes = null)
    {
        ArgumentNullException.ThrowIfNull(update);
        return result is not null
            && update.State == RecipientState.Bounced
            && result.Outcome == DeliveryOutcome.Bounced
            && result.Stage == ReplyStage.Rcpt
            && result.ReplyCode is >= 500 and < 600
            && (result.Class is { } cls ? (classes ?? DefaultClasses).Contains(cls) : RecipientStatuses.Contains(result.EnhancedCode));
    }

    private static readonly HashSet<BounceClass> DefaultClasses = [BounceClass.InvalidRecipient, BounceClass.BadDomain];

    /// <summary>The suppression that a bouncing result adds: its reason is the destination's reply, its source "bounce".</summary>
    public static Suppression Suppression(string address, RecipientUpdate update, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(update);
        var reason = $"hard bounce {update.ReplyCode} {update.EnhancedCode} {update.ReplyText}".Trim();
        if (update.RemoteHost is not null)
        {
            reason += $" ({update.RemoteHost})";
        }

        return new Suppression
        {
            Address = address,
            Reason = reason.Length > 500 ? reason[..500] : reason,
            CreatedAt = now,
            Source = SuppressionSources.Bounce,
        };
    }
}
