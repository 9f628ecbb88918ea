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
    public void Malformed_addresses_are_refused(string address) => Assert.False(MailboxParts.TryParse(address, out _));
}
