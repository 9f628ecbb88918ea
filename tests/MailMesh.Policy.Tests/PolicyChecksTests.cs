using MailMesh.Contracts;
using MailMesh.Storage;

namespace MailMesh.Policy.Tests;

public sealed class PolicyChecksTests
{
    private const string Outside = "198.51.100.7";

    private static readonly Dictionary<string, string?> Settings = new()
    {
        ["Policy:RelayNetworks"] = "127.0.0.0/8,::1/128,2001:db8:1::/48",
        ["Policy:LocalDomains"] = "mail.example",
        ["Policy:MaxRecipientsPerMessage"] = "100",
        ["Policy:ConnectionsPerMinutePerIp"] = "5",
        ["Policy:MessagesPerMinutePerIp"] = "3",
        ["Policy:MaxMessageSize"] = "1000",
    };

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    [InlineData("2001:db8:1::77")]
    [InlineData("::ffff:127.0.0.1")]
    public async Task Clients_in_relay_networks_may_relay(string client)
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        Assert.True((await host.RecipientAsync(client, "someone@elsewhere.example")).Accepted);
    }

    [Theory]
    [InlineData(Outside)]
    [InlineData("2001:db8:2::77")]
    [InlineData("::ffff:198.51.100.7")]
    public async Task Clients_outside_relay_networks_may_not_relay(string client)
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        var decision = await host.RecipientAsync(client, "someone@elsewhere.example");
        Assert.False(decision.Accepted);
        Assert.Equal(550, decision.ReplyCode);
        Assert.Equal("5.7.1", decision.EnhancedCode);
        Assert.Equal("Relaying denied", decision.Reason);
    }

    [Fact]
    public async Task Anyone_may_send_to_a_local_domain_and_authenticated_users_may_relay()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        Assert.True((await host.RecipientAsync(Outside, "postmaster@Mail.Example.")).Accepted);
        Assert.True((await host.RecipientAsync(Outside, "someone@elsewhere.example", user: "app1")).Accepted);
    }

    [Theory]
    [InlineData("\"user@evil.example\"@mail.example")]
    [InlineData("user%evil.example@mail.example")]
    [InlineData("evil.example!user@mail.example")]
    [InlineData("user@evil.example@mail.example")]
    public async Task Routing_tricks_to_a_local_domain_are_refused_from_outside(string recipient)
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        var decision = await host.RecipientAsync(Outside, recipient);
        Assert.False(decision.Accepted);
        Assert.Equal(550, decision.ReplyCode);
        Assert.Equal("5.7.1", decision.EnhancedCode);

        // A trusted client may use them: its mail is relayed anyway.
        Assert.True((await host.RecipientAsync("127.0.0.1", recipient)).Accepted);
    }

    [Fact]
    public async Task Quoted_address_is_judged_by_the_domain_after_the_last_at()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        var decision = await host.RecipientAsync(Outside, "\"user@mail.example\"@evil.example");
        Assert.Equal(550, decision.ReplyCode);
        Assert.Equal("5.7.1", decision.EnhancedCode);
    }

    [Fact]
    public async Task Suppressed_recipient_is_refused()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        await host.Store.AddSuppressionAsync(
            new Suppression { Address = "gone@mail.example", Reason = "hard bounce", CreatedAt = host.Time.GetUtcNow() }, default);

        var decision = await host.RecipientAsync(Outside, "Gone@Mail.Example");
        Assert.False(decision.Accepted);
        Assert.Equal(550, decision.ReplyCode);
        Assert.Equal("5.1.1", decision.EnhancedCode);
        Assert.Equal("gone@mail.example: recipient suppressed (hard bounce)", decision.Reason);
    }

    // Issue 7 §6: another spelling of a suppressed address is the same mailbox and is refused too.
    [Theory]
    [InlineData("\"gone\"@mail.example")]
    [InlineData("\"Go\\ne\"@MAIL.example")]
    [InlineData("gone@\uFF4Dail\uFF0Eexample")]
    public async Task Suppressed_recipient_is_refused_however_it_is_spelled(string recipient)
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        await host.Store.AddSuppressionAsync(
            new Suppression { Address = "gone@mail.example", Reason = "hard bounce", CreatedAt = host.Time.GetUtcNow() }, default);

        var decision = await host.RecipientAsync(Outside, recipient);
        Assert.False(decision.Accepted);
        Assert.Equal(550, decision.ReplyCode);
        Assert.Equal("5.1.1", decision.EnhancedCode);
    }

    [Fact]
    public async Task Recipient_limit_answers_452()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        Assert.True((await host.RecipientAsync("127.0.0.1", "a@x.example", accepted: 99)).Accepted);
        var decision = await host.RecipientAsync("127.0.0.1", "a@x.example", accepted: 100);
        Assert.Equal(452, decision.ReplyCode);
        Assert.Equal("4.5.3", decision.EnhancedCode);
    }

    [Fact]
    public async Task Malformed_recipient_answers_501()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        var decision = await host.RecipientAsync("127.0.0.1", "no-domain");
        Assert.Equal(501, decision.ReplyCode);
        Assert.Equal("5.1.3", decision.EnhancedCode);
    }

    [Fact]
    public async Task Connection_rate_limit_holds_across_two_replicas()
    {
        var path = PolicyTestHost.NewDatabasePath();
        await using var first = await PolicyTestHost.StartAsync(Settings, path);
        await using var second = await PolicyTestHost.StartAsync(Settings, path, first.Time);

        for (var i = 0; i < 5; i++)
        {
            var replica = i % 2 == 0 ? first : second;
            Assert.True((await replica.AskAsync(new CheckConnection { ClientAddress = Outside })).Accepted);
        }

        var refused = await second.AskAsync(new CheckConnection { ClientAddress = Outside });
        Assert.False(refused.Accepted);
        Assert.Equal(421, refused.ReplyCode);
        Assert.Equal("4.7.0", refused.EnhancedCode);
        Assert.Equal($"too many connections from {Outside}, try later", refused.Reason);

        // Another client has its own budget; relay networks are exempt.
        Assert.True((await first.AskAsync(new CheckConnection { ClientAddress = "203.0.113.9" })).Accepted);
        for (var i = 0; i < 10; i++)
        {
            Assert.True((await first.AskAsync(new CheckConnection { ClientAddress = "127.0.0.1" })).Accepted);
        }

        // The next minute is a new window.
        first.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.True((await first.AskAsync(new CheckConnection { ClientAddress = Outside })).Accepted);
    }

    [Fact]
    public async Task Message_rate_limit_holds_across_two_replicas()
    {
        var path = PolicyTestHost.NewDatabasePath();
        await using var first = await PolicyTestHost.StartAsync(Settings, path);
        await using var second = await PolicyTestHost.StartAsync(Settings, path, first.Time);

        Assert.True((await first.AskAsync(Message(100))).Accepted);
        Assert.True((await second.AskAsync(Message(100))).Accepted);
        Assert.True((await first.AskAsync(Message(100))).Accepted);
        var refused = await second.AskAsync(Message(100));
        Assert.Equal(450, refused.ReplyCode);
        Assert.Equal("4.7.1", refused.EnhancedCode);
    }

    [Fact]
    public async Task Oversized_message_answers_552()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        Assert.True((await host.AskAsync(Message(1000))).Accepted);
        var decision = await host.AskAsync(Message(1001));
        Assert.False(decision.Accepted);
        Assert.Equal(552, decision.ReplyCode);
        Assert.Equal("5.3.4", decision.EnhancedCode);
    }

    private static CheckMessage Message(long size) => new()
    {
        ClientAddress = Outside,
        Sender = "sender@origin.example",
        Recipients = ["postmaster@mail.example"],
        Size = size,
    };
}
