using System.Globalization;
using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Content;

/// <summary>The end-of-data content checks as a whole (section "Policy:Content"): <see cref="ContentChecks"/>.</summary>
public sealed class ContentCheckOptions : IValidatedOptions
{
    public static string SectionName => "Policy:Content";

    /// <summary>
    /// Bound on all the checks of one message together (DKIM/ARC/DMARC lookups, a scanner); past it the message is
    /// refused with 451 4.7.1 and the client retries. The SMTP client waits up to 10 minutes for the reply to the end of
    /// DATA (RFC 5321 §4.5.3.2.6), so this can be generous. Default 30 seconds.
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    public IEnumerable<string> Validate()
    {
        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromMinutes(5))
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(Timeout)}: must be positive and at most 5 minutes (was {Timeout})");
        }
    }
}

/// <summary>
/// The authserv-id (RFC 8601 §2.5) this server names in the Authentication-Results header it stamps and in
/// Received-SPF's receiver: <c>Policy:AuthServId</c>; when empty the older <c>Policy:Spf:AuthServId</c>, then
/// <c>Ingress:HostName</c>, then the machine name.
/// </summary>
public sealed class AuthServIdOptions : IValidatedOptions
{
    public static string SectionName => "Policy";

    public string? AuthServId { get; set; }

    public IEnumerable<string> Validate()
    {
        if (!IsToken(AuthServId))
        {
            yield return $"{SectionName}:{nameof(AuthServId)}: '{AuthServId}' must be a token (printable ASCII, no spaces, ';', '(', ')' or quotes)";
        }
    }

    /// <summary>Null/empty (a default is filled in) or printable ASCII without spaces, ';', '(', ')' or quotes.</summary>
    internal static bool IsToken(string? id) =>
        id is not { Length: > 0 } || !id.Any(c => c <= ' ' || c > '~' || c is ';' or '(' or ')' or '"');
}
