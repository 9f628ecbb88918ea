using MailMesh.ServiceDefaults.Security;
using MailMesh.Smtp;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace MailMesh.Mailbox.Accounts;

/// <summary>
/// The Mailbox service's admin API (issue 5 authentication): accounts and aliases. <c>mailboxes:read</c> lists and
/// reads, <c>mailboxes:write</c> creates and changes. Password hashes are never returned.
/// </summary>
public static partial class MailboxEndpoints
{
    internal const int DefaultListLimit = 100;
    internal const int MaxListLimit = 1000;

    /// <summary>
    /// <c>GET /api/v1/mailboxes</c> (<c>?after=&amp;limit=</c>), <c>GET /api/v1/mailboxes/{address}</c>,
    /// <c>PUT /api/v1/mailboxes/{address}</c> (JSON <c>{"password"|"passwordHash", "quotaBytes", "disabled"}</c>, each
    /// optional: creates the account when missing, else changes what the body names; <c>"quotaBytes": 0</c> or a negative
    /// value is refused, <c>"clearQuota": true</c> removes it), <c>GET /api/v1/mailbox-aliases</c>,
    /// <c>PUT|DELETE /api/v1/mailbox-aliases/{address}</c> (<c>{"target": "account@domain"}</c>; "@domain" is the catch-all).
    /// </summary>
    public static IEndpointRouteBuilder MapMailboxEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/v1/mailboxes").WithTags("Mailbox");
        api.MapGet("/", ListAsync).WithName("ListMailboxes").RequireAdminScope(AdminScopes.MailboxesRead);
        api.MapGet("/{address}", GetAsync).WithName("GetMailbox").RequireAdminScope(AdminScopes.MailboxesRead);
        api.MapPut("/{address}", PutAsync).WithName("PutMailbox").RequireAdminScope(AdminScopes.MailboxesWrite);
        var aliases = endpoints.MapGroup("/api/v1/mailbox-aliases").WithTags("Mailbox");
        aliases.MapGet("/", ListAliasesAsync).WithName("ListMailboxAliases").RequireAdminScope(AdminScopes.MailboxesRead);
        aliases.MapPut("/{address}", PutAliasAsync).WithName("PutMailboxAlias").RequireAdminScope(AdminScopes.MailboxesWrite);
        aliases.MapDelete("/{address}", DeleteAliasAsync).WithName("DeleteMailboxAlias").RequireAdminScope(AdminScopes.MailboxesWrite);

        // The admin API v1 (issue 12): the same accounts under /api/v1/admin, where the UI and the CLI find everything.
        var admin = endpoints.MapGroup("/api/v1/admin/mailboxes").WithTags("Mailbox");
        admin.MapGet("/", ListAsync).WithName("AdminListMailboxes").RequireAdminScope(AdminScopes.MailboxesRead);
        admin.MapGet("/{address}", GetAsync).WithName("AdminGetMailbox").RequireAdminScope(AdminScopes.MailboxesRead);
        admin.MapPut("/{address}", PutAsync).WithName("AdminPutMailbox").RequireAdminScope(AdminScopes.MailboxesWrite);
        return endpoints;
    }

    internal static async Task<Results<Ok<IReadOnlyList<MailboxView>>, ProblemHttpResult>> ListAsync(
        IMailStore store, CancellationToken cancellationToken, string? after = null, int? limit = null)
    {
        var take = limit ?? DefaultListLimit;
        if (take is < 1 or > MaxListLimit)
        {
            return BadRequest("Invalid limit", $"limit must be between 1 and {MaxListLimit} (was {take}).");
        }

        if (!string.IsNullOrEmpty(after) && !IsAddress(after))
        {
            return BadRequest("Invalid after", "after must be the last address of the previous page.");
        }

        var accounts = await store.ListAccountsAsync(after, take, cancellationToken);
        return TypedResults.Ok<IReadOnlyList<MailboxView>>([.. accounts.Select(MailboxView.Of)]);
    }

    internal static async Task<Results<Ok<MailboxView>, ProblemHttpResult>> GetAsync(string address, IMailStore store, CancellationToken cancellationToken)
    {
        if (!IsAddress(address))
        {
            return Malformed(address);
        }

        return await store.GetAccountAsync(address, cancellationToken) is { } account
            ? TypedResults.Ok(MailboxView.Of(account))
            : NotFound(address);
    }

    internal static async Task<Results<Ok<MailboxView>, ProblemHttpResult>> PutAsync(
        string address, MailboxRequest? request, IMailStore store, TimeProvider time, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        if (!IsAddress(address))
        {
            return Malformed(address);
        }

        request ??= new MailboxRequest();
        if (request.QuotaBytes is < 1)
        {
            return BadRequest("Invalid quotaBytes", "quotaBytes must be positive; send \"clearQuota\": true for no quota.");
        }

        string? hash = null;
        if (request.Password is { Length: > 0 } password)
        {
            hash = PasswordHash.Create(password);
        }
        else if (request.PasswordHash is { Length: > 0 } given)
        {
            if (!PasswordHash.TryParse(given, out _, out var error))
            {
                return BadRequest("Invalid passwordHash", "passwordHash " + error + ".");
            }

            hash = given;
        }

        var created = await store.CreateAccountAsync(new NewMailAccount
        {
            Address = address.Trim(),
            PasswordHash = hash ?? string.Empty,
            QuotaBytes = request.QuotaBytes,
            Disabled = request.Disabled ?? false,
            CreatedAt = time.GetUtcNow(),
        }, cancellationToken);
        if (!created)
        {
            if (await store.GetAccountAsync(address, cancellationToken) is null)
            {
                return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Address is an alias", detail: $"{address.Trim()} is an alias; remove it first.");
            }

            if (hash is not null)
            {
                await store.SetPasswordHashAsync(address, hash, cancellationToken);
            }

            if (request.QuotaBytes is not null || request.ClearQuota == true)
            {
                await store.SetQuotaAsync(address, request.ClearQuota == true ? null : request.QuotaBytes, cancellationToken);
            }

            if (request.Disabled is { } disabled)
            {
                await store.SetDisabledAsync(address, disabled, cancellationToken);
            }
        }

        var account = await store.GetAccountAsync(address, cancellationToken);
        LogChanged(loggers.CreateLogger(typeof(MailboxEndpoints).FullName!), account!.Address, created ? "created" : "changed");
        return TypedResults.Ok(MailboxView.Of(account));
    }

    internal static async Task<Ok<IReadOnlyList<MailAlias>>> ListAliasesAsync(IMailStore store, CancellationToken cancellationToken) =>
        TypedResults.Ok(await store.ListAliasesAsync(MaxListLimit, cancellationToken));

    internal static async Task<Results<Ok<MailAlias>, ProblemHttpResult>> PutAliasAsync(
        string address, AliasRequest? request, IMailStore store, CancellationToken cancellationToken)
    {
        if (!IsAlias(address) || request?.Target is not { } target || !IsAddress(target))
        {
            return BadRequest("Malformed alias", "The path names an address or @domain, the body {\"target\": \"account@domain\"}.");
        }

        return await store.SetAliasAsync(address.Trim(), target.Trim(), cancellationToken)
            ? TypedResults.Ok(new MailAlias { Address = address.Trim(), Target = target.Trim() })
            : TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Not an alias",
                detail: $"{target.Trim()} is not an account, or {address.Trim()} is an account's own address.");
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> DeleteAliasAsync(string address, IMailStore store, CancellationToken cancellationToken)
    {
        if (!IsAlias(address))
        {
            return Malformed(address);
        }

        return await store.RemoveAliasAsync(address.Trim(), cancellationToken) ? TypedResults.NoContent() : NotFound(address);
    }

    private static bool IsAddress(string text) => NormalizedAddress.TryParse(text.Trim(), out var address) && !address.IsAddressLiteral;

    private static bool IsAlias(string text) =>
        text.Trim() is var trimmed && (trimmed.StartsWith('@') ? NormalizedAddress.TryNormalizeDomain(trimmed[1..], out _) : IsAddress(trimmed));

    private static ProblemHttpResult Malformed(string address) =>
        BadRequest("Malformed address", $"'{(address.Length <= 80 ? address : address[..80] + "…")}' is not an email address (local-part@domain).");

    private static ProblemHttpResult NotFound(string address) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found", detail: $"{address.Trim()} is not here.");

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    [LoggerMessage(EventId = 6031, Level = LogLevel.Information, Message = "Mailbox {Address} {Change} over the admin API")]
    private static partial void LogChanged(ILogger logger, string address, string change);

    /// <summary>Body of PUT /api/v1/mailboxes/{address}: every member optional.</summary>
    public sealed record MailboxRequest(string? Password = null, string? PasswordHash = null, long? QuotaBytes = null, bool? ClearQuota = null, bool? Disabled = null);

    /// <summary>Body of PUT /api/v1/mailbox-aliases/{address}.</summary>
    public sealed record AliasRequest(string? Target);

    /// <summary>An account as the API shows it (never its password hash).</summary>
    public sealed record MailboxView(string Address, bool Disabled, bool HasPassword, long? QuotaBytes, long UsedBytes, DateTimeOffset CreatedAt)
    {
        public static MailboxView Of(MailAccount account) =>
            new(account.Address, account.Disabled, account.PasswordHash.Length > 0, account.QuotaBytes, account.UsedBytes, account.CreatedAt);
    }
}
