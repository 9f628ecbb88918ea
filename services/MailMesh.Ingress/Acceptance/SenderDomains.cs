using System.Globalization;
using MailMesh.Ingress.Auth;
using MailMesh.Ingress.Http;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.Extensions.Options;
using MimeKit;

namespace MailMesh.Ingress.Acceptance;

/// <summary>
/// Which RFC5322.From domains an authenticated account may send as (Ingress:Auth:Users:n:SenderDomains for SMTP AUTH
/// users, Ingress:Api:Keys:n:SenderDomains for API keys): so that Delivery's DKIM signature, made for the From domain,
/// is never put on mail an account forged for a domain it does not own. A listed domain covers its sub-domains. An
/// account without a list may use any From domain (as before this rule); unauthenticated clients (relay networks) are
/// not checked.
/// </summary>
internal sealed class SenderDomains
{
    private readonly Dictionary<string, string[]> _smtp;
    private readonly Dictionary<string, string[]> _http;
    private readonly StoredApiKeys? _stored;
    private readonly HashSet<string> _configuredSmtp;
    private readonly StoredSmtpUsers? _storedSmtp;

    public SenderDomains(IOptions<IngressAuthOptions> auth, IOptions<HttpApiOptions> api, StoredApiKeys? stored = null, StoredSmtpUsers? storedSmtp = null)
    {
        _stored = stored;
        _storedSmtp = storedSmtp;
        _configuredSmtp = auth.Value.Users.Select(u => u.Name).ToHashSet(StringComparer.Ordinal);
        _smtp = auth.Value.Users.Where(u => !string.IsNullOrWhiteSpace(u.SenderDomains))
            .ToDictionary(u => u.Name, u => Normalise(u.SenderDomains!), StringComparer.OrdinalIgnoreCase);
        _http = api.Value.Keys.Where(k => !string.IsNullOrWhiteSpace(k.SenderDomains) && k.Name is not null)
            .ToDictionary(k => k.Name!, k => Normalise(k.SenderDomains!), StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>True when no account has a list: the check costs nothing then.</summary>
    public bool IsEmpty => _smtp.Count == 0 && _http.Count == 0 && (_stored is null || _stored.Current.Count == 0)
        && (_storedSmtp is null || _storedSmtp.Current.Count == 0);

    /// <summary>
    /// Null when the message may be accepted; otherwise the From domain that is not allowed (or a description of the
    /// missing or ambiguous From).
    /// </summary>
    public async Task<string?> RefusalAsync(AcceptRequest request, CancellationToken cancellationToken)
    {
        if (request.AuthenticatedUser is not { } user || Allowed(request.Origin, user) is not { } allowed)
        {
            return null;
        }

        var headers = await LoadHeadersAsync(request, cancellationToken);
        var from = headers?.Where(h => h.Id == HeaderId.From).ToList();
        if (from is not { Count: 1 } || !InternetAddressList.TryParse(from[0].Value, out var addresses) || !addresses.Mailboxes.Any())
        {
            return "(no single From address)";
        }

        foreach (var mailbox in addresses.Mailboxes)
        {
            var domain = Domain(mailbox.Domain);
            if (domain is null || !allowed.Any(a => domain == a || domain.EndsWith("." + a, StringComparison.Ordinal)))
            {
                return mailbox.Domain ?? "(none)";
            }
        }

        return null;
    }

    /// <summary>The From domains <paramref name="user"/> may use; null: any.</summary>
    private string[]? Allowed(MessageOrigin origin, string user)
    {
        if (origin != MessageOrigin.Http)
        {
            // A configured account (Authenticator checks them first), else a user made through the admin API (disabled
            // during this session or not: its list still holds).
            return _configuredSmtp.Contains(user)
                ? _smtp.GetValueOrDefault(user)
                : _storedSmtp?.Find(user)?.SenderDomains is { Length: > 0 } madeDomains ? Normalise(madeDomains) : null;
        }

        if (_http.TryGetValue(user, out var configured))
        {
            return configured;
        }

        // A key made through the admin API (names are unique across configured and stored keys).
        var made = _stored?.Enabled(ApiKeyKind.Submission).FirstOrDefault(k => string.Equals(k.Name, user, StringComparison.Ordinal));
        return made?.SenderDomains is { Length: > 0 } domains ? Normalise(domains) : null;
    }

    /// <summary>The header section: from the content in memory, else from the start of the spilled stream.</summary>
    private static async Task<HeaderList?> LoadHeadersAsync(AcceptRequest request, CancellationToken cancellationToken)
    {
        try
        {
            if (request.Content.Length > 0)
            {
                var span = request.Content.Span;
                var end = span.IndexOf("\r\n\r\n"u8);
                using var memory = new MemoryStream(span[..(end < 0 ? span.Length : end + 4)].ToArray());
                return await HeaderList.LoadAsync(memory, cancellationToken);
            }

            if (request.ContentSource is { } source)
            {
                await using var stream = source.Open();
                return await HeaderList.LoadAsync(stream, cancellationToken);
            }
        }
        catch (FormatException)
        {
        }

        return null;
    }

    private static string[] Normalise(string domains) =>
        domains.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => Domain(d) ?? d.ToLowerInvariant()).ToArray();

    /// <summary>The configuration check of a SenderDomains value: comma-separated domain names.</summary>
    internal static bool IsValid(string? domains) =>
        string.IsNullOrWhiteSpace(domains)
        || domains.Split(',', StringSplitOptions.TrimEntries).All(d => Domain(d) is { } ascii && ascii.Contains('.', StringComparison.Ordinal));

    private static string? Domain(string? domain)
    {
        if (string.IsNullOrWhiteSpace(domain))
        {
            return null;
        }

        try
        {
            return new IdnMapping().GetAscii(domain.Trim().TrimEnd('.')).ToLowerInvariant();
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
