namespace MailMesh.Policy.Tests;

public sealed class RelayRulesTests
{
    private static readonly RelayRules Rules = new(new PolicyOptions
    {
        RelayNetworks = "127.0.0.0/8, ::1/128, 10.20.0.0/16, 2001:db8:1::/48",
        LocalDomains = "Mail.Example., inbound.example",
    });

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("10.20.255.3", true)]
    [InlineData("10.21.0.1", false)]
    [InlineData("::ffff:10.20.0.9", true)]
    [InlineData("::1", true)]
    [InlineData("2001:db8:1:ffff::25", true)]
    [InlineData("2001:db8:2::25", false)]
    [InlineData("198.51.100.7", false)]
    [InlineData("not-an-ip", false)]
    public void Relay_clients_are_matched_by_network(string client, bool relay) => Assert.Equal(relay, Rules.IsRelayClient(client));

    [Fact]
    public void Local_domains_are_case_insensitive_without_trailing_dot()
    {
        Assert.True(Rules.IsLocalDomain("mail.example"));
        Assert.True(Rules.IsLocalDomain("inbound.example"));
        Assert.False(Rules.IsLocalDomain("sub.mail.example"));
    }

    [Theory]
    [InlineData("198.51.100.7", "198.51.100.7")]
    [InlineData("::ffff:198.51.100.7", "198.51.100.7")]
    [InlineData("2001:db8:aa:bb:1:2:3:4", "2001:db8:aa:bb::/64")]
    public void Rate_keys_group_IPv6_by_64(string client, string key) => Assert.Equal(key, RelayRules.RateKey(client));

    [Fact]
    public void Options_validation_names_the_key_and_the_bad_value()
    {
        var failures = new PolicyOptions { RelayNetworks = "127.0.0.0/8,10.0.0.0/33,bogus", LocalDomains = "ok.example,bad!domain", MaxRecipientsPerMessage = 10 }
            .Validate().ToList();
        Assert.Contains(failures, f => f.StartsWith("Policy:RelayNetworks: 'bogus' is not a CIDR", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Policy:RelayNetworks: '10.0.0.0/33' is not a CIDR", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Policy:LocalDomains: 'bad!domain' is not a domain name", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Policy:MaxRecipientsPerMessage: ", StringComparison.Ordinal));
        Assert.Empty(new PolicyOptions().Validate());
    }
}
