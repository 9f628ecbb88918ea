using MailMesh.Storage;
using System.Security.Claims;
using System.Text.Encodings.Web;
using MailMesh.ServiceDefaults.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace MailMesh.Ingress.Http;

/// <summary>
/// API-key authentication: <c>Authorization: Bearer &lt;key&gt;</c> (RFC 6750 §2.1 syntax), checked against the SHA-256
/// hashes in Ingress:Api:Keys. The key's configured name becomes the principal, which Policy sees as the authenticated
/// user (so it may relay).
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ApiKeyRing keys) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "MailMesh.ApiKey";

    /// <summary>The authorization policy of every API endpoint: an authenticated API key.</summary>
    public const string PolicyName = "MailMesh.ApiKey";

    private const string Realm = "mailmesh";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization;
        if (header.Count == 0)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (!ApiKeys.TryReadBearer(header, out var token))
        {
            return Task.FromResult(AuthenticateResult.Fail("The Authorization header is not \"Bearer <API key>\"."));
        }

        if (!keys.TryAuthenticate(token, out var name))
        {
            HttpApiLog.InvalidApiKey(Logger, Context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
            return Task.FromResult(AuthenticateResult.Fail("The API key is not valid."));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, name)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();

        // RFC 6750 §3: no error code when no credentials were sent; invalid_token when they were wrong (§3.1).
        Response.Headers[HeaderNames.WWWAuthenticate] = result.Failure is null
            ? $"Bearer realm=\"{Realm}\""
            : $"Bearer realm=\"{Realm}\", error=\"invalid_token\", error_description=\"The API key is not valid\"";
        var detail = result.Failure is null
            ? "Send the API key as \"Authorization: Bearer <key>\"."
            : result.Failure.Message;
        await Problems.Unauthorized(detail).ExecuteAsync(Context);
    }
}

/// <summary>
/// The submission keys: the configured ones (hashes only) and the enabled ones made through the admin API
/// (<see cref="StoredApiKeys"/>); compares in constant time (<see cref="ApiKeySet{T}"/>).
/// </summary>
internal sealed class ApiKeyRing(IOptionsMonitor<HttpApiOptions> options, StoredApiKeys stored)
{
    private volatile Snapshot? _snapshot;

    public bool TryAuthenticate(ReadOnlySpan<char> key, out string name) => Keys().TryMatch(key, out name);

    private ApiKeySet<string> Keys()
    {
        var current = options.CurrentValue;
        var storedKeys = stored.Current;
        var snapshot = _snapshot;
        if (snapshot is null || !ReferenceEquals(snapshot.Options, current) || !ReferenceEquals(snapshot.Stored, storedKeys))
        {
            // Options were (re)loaded or the stored keys changed: keys rotate without a restart.
            var configured = current.Keys.Where(k => ApiKeys.IsValidName(k.Name)).Select(k => (k.Hash, k.Name!));
            var made = storedKeys.Where(k => k.Kind == ApiKeyKind.Submission && k.Enabled).Select(k => ((string?)k.Hash, k.Name));
            snapshot = new Snapshot(current, storedKeys, new ApiKeySet<string>(configured.Concat(made)));
            _snapshot = snapshot;
        }

        return snapshot.Keys;
    }

    private sealed record Snapshot(HttpApiOptions Options, IReadOnlyList<StoredApiKey> Stored, ApiKeySet<string> Keys);
}
