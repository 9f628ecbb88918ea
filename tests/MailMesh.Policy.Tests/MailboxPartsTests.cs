namespace MailMesh.Policy.Tests;

public sealed class MailboxPartsTests
{
    [Theory]
    [InlineData("user@Example.COM", "user", "example.com", false)]
    [InlineData("<user@example.com>", "user", "example.com", false)]
    [InlineData("user@example.com.", "user", "example.com", false)]
    [InlineData("\"user@evil.com\"@relay.example", "\"user@evil.com\"", "relay.example", false)]
    [InlineData("user%evil.com@x.example", "user%evil.com", "x.example", false)]
    [InlineData("evil.com!user@x.example", "evil.com!user", "x.example", false)]
    [InlineData("@a.example,@b.example:user@x.example", "user", "x.example", true)]
    [InlineData("<@a.example:user@x.example>", "user", "x.example", true)]
    [InlineData("user@[192.0.2.1]", "user", "[192.0.2.1]", false)]
    [InlineData("User@BÜCHER.example", "User", "xn--bcher-kva.example", false)]
    [InlineData("user@xn--BCHER-kva.example.", "user", "xn--bcher-kva.example", false)]
    [InlineData("josé@münchen.example", "josé", "xn--mnchen-3ya.example", false)]
    public void Splits_at_the_last_at_sign(string address, string local, string domain, bool sourceRoute)
    {
        Assert.True(MailboxParts.TryParse(address, out var parts));
        Assert.Equal(local, parts.LocalPart);
        Assert.Equal(domain, parts.Domain);
        Assert.Equal(sourceRoute, parts.HadSourceRoute);
    }

    [Theory]
    [InlineData("\"user@evil.com\"@relay.example", true)]
    [InlineData("user%evil.com@x.example", true)]
    [InlineData("evil.com!user@x.example", true)]
    [InlineData("plain.user+tag@x.example", false)]
    public void Routing_characters_are_detected(string address, bool routing)
    {
        Assert.True(MailboxParts.TryParse(address, out var parts));
        Assert.Equal(routing, parts.HasRoutingCharacters);
    }

    [Theory]
    [InlineData("")]
    [InlineData("user")]
    [InlineData("user@")]
    [InlineData("@example.com")]
    [InlineData("user@.")]
    [InlineData("us er@example.com")]
    [InlineData("@a.example")]
    [InlineData("user@xn--zz.example")]
    [InlineData("user@exa_mple.example")]
    public void Malformed_addresses_are_refused(string address) => Assert.False(MailboxParts.TryParse(address, out _));

    [Fact]
    public void Local_domains_and_recipients_meet_in_one_normal_form()
    {
        var rules = new RelayRules(new PolicyOptions { LocalDomains = "Bücher.Example, xn--mnchen-3ya.example." });
        Assert.True(MailboxParts.TryParse("user@xn--bcher-kva.example", out var aLabel));
        Assert.True(rules.IsLocalDomain(aLabel.Domain));
        Assert.True(MailboxParts.TryParse("user@MÜNCHEN.example", out var uLabel));
        Assert.True(rules.IsLocalDomain(uLabel.Domain));
        Assert.Equal("user@xn--bcher-kva.example", aLabel.Normalized);
    }
}
