using System.Data.Common;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Mailbox.Accounts;

/// <summary>
/// Writes the configured accounts and aliases into the mail store when the host starts (after the schema migration,
/// before the bus and the listeners): creates missing accounts with their folders, and sets each configured account's
/// password hash, quota and state. Every replica does it; the writes are idempotent, so they may race. A store that
/// does not answer is retried for a minute, then start-up fails. An alias whose target is not an account stops
/// start-up naming its key.
/// </summary>
internal sealed partial class AccountSync(
    IMailStore store,
    IOptions<MailboxAccountsOptions> options,
    TimeProvider time,
    ILogger<AccountSync> logger) : IHostedService
{
    private static readonly TimeSpan RetryFor = TimeSpan.FromMinutes(1);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var accounts = options.Value;
        if (accounts.Users.Count == 0 && accounts.Aliases.Count == 0)
        {
            return;
        }

        var giveUpAt = time.GetUtcNow() + RetryFor;
        for (var failures = 1; ; failures++)
        {
            try
            {
                await SyncAsync(accounts, cancellationToken);
                LogSynced(logger, accounts.Users.Count, accounts.Aliases.Count);
                return;
            }
            catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException && time.GetUtcNow() < giveUpAt)
            {
                LogSyncFailed(logger, ex, failures);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(10, failures)), time, cancellationToken);
            }
        }
    }

    private async Task SyncAsync(MailboxAccountsOptions accounts, CancellationToken cancellationToken)
    {
        foreach (var user in accounts.Users)
        {
            var address = user.Address.Trim();
            var created = await store.CreateAccountAsync(new NewMailAccount
            {
                Address = address,
                PasswordHash = user.PasswordHash,
                QuotaBytes = user.QuotaBytes,
                Disabled = user.Disabled,
                CreatedAt = time.GetUtcNow(),
            }, cancellationToken);
            if (!created)
            {
                // Configuration wins for what it names.
                await store.SetPasswordHashAsync(address, user.PasswordHash, cancellationToken);
                await store.SetQuotaAsync(address, user.QuotaBytes, cancellationToken);
                await store.SetDisabledAsync(address, user.Disabled, cancellationToken);
            }
        }

        for (var i = 0; i < accounts.Aliases.Count; i++)
        {
            var alias = accounts.Aliases[i];
            if (!await store.SetAliasAsync(alias.Address.Trim(), alias.Target.Trim(), cancellationToken))
            {
                throw new ConfigurationKeyException(
                    $"Mailbox:Aliases:{i}:Target", $"'{alias.Target}' is not an account (or '{alias.Address}' is an account's own address)");
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 6021, Level = LogLevel.Information, Message = "Mailbox accounts from configuration: {Users} accounts and {Aliases} aliases written to the mail store")]
    private static partial void LogSynced(ILogger logger, int users, int aliases);

    [LoggerMessage(EventId = 6022, Level = LogLevel.Warning, Message = "Writing the configured mailbox accounts failed ({Failures} times); retrying")]
    private static partial void LogSyncFailed(ILogger logger, Exception exception, int failures);
}
