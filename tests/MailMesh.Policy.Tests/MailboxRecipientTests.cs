using MailMesh.Storage;

namespace MailMesh.Policy.Tests;

/// <summary>
/// RCPT for a mailbox domain (Policy:MailboxDomains, issue 9): answered from the mail store, so nothing is accepted that
/// cannot be stored and no bounce goes back to a forged sender later.
/// </summary>
public sealed class MailboxRecipientTests
{
    private const string Outside = "198.51.100.7";

    private static readonly Dictionary<string, string?> Settings = new()
    {
        ["Policy:RelayNetworks"] = "127.0.0.0/8",
        ["Policy:LocalDomains"] = "relay.example",
        ["Policy:MailboxDomains"] = "Mail.Example, bücher.example",
    };

    private static async Task<PolicyTestHost> StartAsync()
    {
        var host = await PolicyTestHost.StartAsync(Settings);
        var now = host.Time.GetUtcNow();
        Assert.True(await host.MailStore.CreateAccountAsync(new NewMailAccount { Address = "alice@mail.example", CreatedAt = now }, CancellationToken.None));
        Assert.True(await host.MailStore.CreateAccountAsync(new NewMailAccount { Address = "full@mail.example", QuotaBytes = 0, CreatedAt = now }, CancellationToken.None));
        Assert.True(await host.MailStore.CreateAccountAsync(new NewMailAccount { Address = "gone@mail.example", Disabled = true, CreatedAt = now }, CancellationToken.None));
        Assert.True(await host.MailStore.CreateAccountAsync(new NewMailAccount { Address = "dora@xn--bcher-kva.example", CreatedAt = now }, CancellationToken.None));
        Assert.True(await host.MailStore.SetAliasAsync("info@mail.example", "alice@mail.example", CancellationToken.None));
        return host;
    }

    [Theory]
    [InlineData("alice@mail.example")]
    [InlineData("Alice@MAIL.example.")]
    [InlineData("info@mail.example")]
    [InlineData("DORA@Bücher.example")]
    public async Task An_account_or_alias_of_a_mailbox_domain_is_accepted_from_anyone(string recipient)
    {
        await using var host = await StartAsync();
        Assert.True((await host.RecipientAsync(Outside, recipient)).Accepted);
    }

    [Theory]
    [InlineData("nobody@mail.example", 550, "5.1.1")]
    [InlineData("full@mail.example", 452, "4.2.2")]
    [InlineData("gone@mail.example", 550, "5.2.1")]
    public async Task What_cannot_be_stored_is_refused_at_rcpt_even_for_relay_clients(string recipient, int code, string enhanced)
    {
        await using var host = await StartAsync();
        foreach (var client in new[] { Outside, "127.0.0.1" })
        {
            var decision = await host.RecipientAsync(client, recipient);
            Assert.False(decision.Accepted);
            Assert.Equal((code, enhanced), (decision.ReplyCode, decision.EnhancedCode));
        }
    }

    [Fact]
    public async Task A_catch_all_takes_every_address_of_its_domain()
    {
        await using var host = await StartAsync();
        Assert.True(await host.MailStore.SetAliasAsync("@mail.example", "alice@mail.example", CancellationToken.None));
        Assert.True((await host.RecipientAsync(Outside, "anything@mail.example")).Accepted);
    }

    [Fact]
    public async Task Local_domains_that_are_not_mailbox_domains_are_not_asked_of_the_store()
    {
        await using var host = await StartAsync();
        Assert.True((await host.RecipientAsync(Outside, "nobody@relay.example")).Accepted);
        Assert.Equal(550, (await host.RecipientAsync(Outside, "nobody@elsewhere.example")).ReplyCode);
    }
}
