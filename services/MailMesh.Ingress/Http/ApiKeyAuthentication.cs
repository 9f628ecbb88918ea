using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
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
        var values = Request.Headers.Authorization;
        if (values.Count == 0)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        // RFC 9110 §11.1: the scheme name is case-insensitive; RFC 6750 §2.1: "Bearer" 1*SP b64token.
        var value = values.Count == 1 ? values[0] : null;
        if (value is null || !value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.Fail("The Authorization header is not \"Bearer <API key>\"."));
        }

        var token = value.AsSpan(7).Trim(' ');
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

/// <summary>The configured API keys (hashes only); compares in constant time.</summary>
internal sealed class ApiKeyRing
{
    /// <summary>Longer bearer tokens are refused without hashing.</summary>
    public const int MaxKeyLength = 512;

    private readonly IOptionsMonitor<HttpApiOptions> _options;
    private volatile Snapshot? _snapshot;

    public ApiKeyRing(IOptionsMonitor<HttpApiOptions> options) => _options = options;

    public bool TryAuthenticate(ReadOnlySpan<char> key, out string name)
    {
        name = string.Empty;
        if (key.IsEmpty || key.Length > MaxKeyLength)
        {
            return false;
        }

        Span<byte> utf8 = stackalloc byte[Encoding.UTF8.GetMaxByteCount(MaxKeyLength)];
        var length = Encoding.UTF8.GetBytes(key, utf8);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(utf8[..length], hash);
        CryptographicOperations.ZeroMemory(utf8[..length]);

        // Every configured hash is compared, in constant time, so the timing says nothing about which key matched.
        var keys = Keys();
        var match = -1;
        for (var i = 0; i < keys.Length; i++)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, keys[i].Hash))
            {
                match = i;
            }
        }

        if (match < 0)
        {
            return false;
        }

        name = keys[match].Name;
        return true;
    }

    private (string Name, byte[] Hash)[] Keys()
    {
        var current = _options.CurrentValue;
        var snapshot = _snapshot;
        if (snapshot is null || !ReferenceEquals(snapshot.Options, current))
        {
            // Options were (re)loaded: keys rotate without a restart when the configuration source reloads.
            snapshot = new Snapshot(current, [.. current.Keys
                .Where(k => ApiKeyOptions.IsValidName(k.Name) && ApiKeyOptions.IsValidHash(k.Hash))
                .Select(k => (k.Name!, Convert.FromHexString(k.Hash!)))]);
            _snapshot = snapshot;
        }

        return snapshot.Keys;
    }

    private sealed record Snapshot(HttpApiOptions Options, (string Name, byte[] Hash)[] Keys);
}
