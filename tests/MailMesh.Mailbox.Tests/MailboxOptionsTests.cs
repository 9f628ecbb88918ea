using MailMesh.Mailbox.Accounts;
using MailMesh.Mailbox.Deliveries;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;

namespace MailMesh.Mailbox.Tests;

/// <summary>Configured accounts and local delivery settings are checked at start, each problem naming its key.</summary>
public sealed class MailboxOptionsTests
{
    private static readonly Lazy<string> Hash = new(() => PasswordHash.Create("secret", PasswordHash.MinIterations));

    [Fact]
    public void Valid_accounts_aliases_and_a_catch_all_pass()
    {
        var options = new MailboxAccountsOptions
        {
            Users = [new MailboxUser { Address = "alice@mail.test", PasswordHash = Hash.Value, QuotaBytes = 1000 }, new MailboxUser { Address = "bob@Bücher.test" }],
            Aliases = [new MailboxAlias { Address = "info@mail.test", Target = "alice@mail.test" }, new MailboxAlias { Address = "@mail.test", Target = "bob@xn--bcher-kva.test" }],
        };
        Assert.Empty(options.Validate());
    }

    [Fact]
    public void Each_bad_entry_names_its_key()
    {
        var options = new MailboxAccountsOptions
        {
            Users =
            [
                new MailboxUser { Address = "alice@mail.test" },
                new MailboxUser { Address = "ALICE@mail.test" },
                new MailboxUser { Address = "not-an-address" },
                new MailboxUser { Address = "c@mail.test", PasswordHash = "plaintext", QuotaBytes = -1 },
            ],
            Aliases = [new MailboxAlias { Address = "@", Target = "alice@mail.test" }, new MailboxAlias { Address = "x@mail.test", Target = "nobody" }],
        };

        var failures = options.Validate().ToList();
        Assert.Contains(failures, f => f.StartsWith("Mailbox:Users:1:Address: 'ALICE@mail.test' is configured twice", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Mailbox:Users:2:Address:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Mailbox:Users:3:PasswordHash: must be pbkdf2-sha256", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Mailbox:Users:3:QuotaBytes:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Mailbox:Aliases:0:Address:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Mailbox:Aliases:1:Target:", StringComparison.Ordinal));
        Assert.Equal(6, failures.Count);
    }

    [Fact]
    public void Delivery_settings_are_checked()
    {
        var failures = new LocalDeliveryOptions { HostName = "bad host", DeliveryConcurrency = 0, StoreTimeout = TimeSpan.Zero }.Validate().ToList();
        Assert.Contains(failures, f => f.StartsWith("Mailbox:HostName:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Mailbox:DeliveryConcurrency:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Mailbox:StoreTimeout:", StringComparison.Ordinal));
    }

    [Fact]
    public void Mailbox_domains_are_compared_in_a_label_form_and_bad_ones_name_the_key()
    {
        var domains = new MailboxDomainsOptions { MailboxDomains = "Mail.Test., bücher.test" };
        Assert.True(domains.Contains("mail.test"));
        Assert.True(domains.Contains("xn--bcher-kva.test"));
        Assert.False(domains.Contains("other.test"));
        Assert.Equal(["Policy:MailboxDomains: 'bad!domain' is not a domain name"], new MailboxDomainsOptions { MailboxDomains = "ok.test,bad!domain" }.Validate());
    }
}
