using System.Text;

namespace MailMesh.Smtp.Tests;

public sealed class MailboxParserTests
{
    private static PathError Parse(string path, bool allowNull, out Mailbox? mailbox, out bool postmaster)
    {
        var result = MailboxParser.ParsePath(Encoding.Latin1.GetBytes(path), allowNull, out mailbox, out var consumed, out postmaster);
        if (result == PathError.None)
        {
            Assert.Equal(path.Length, consumed);
        }

        return result;
    }

    [Theory]
    [InlineData("<user@example.com>", "user", "example.com")]
    [InlineData("<User.Name+tag@Example.COM>", "User.Name+tag", "example.com")]
    [InlineData("<a!b%c@example.com>", "a!b%c", "example.com")]
    [InlineData("<#!$%&'*+-/=?^_`{|}~@x.y>", "#!$%&'*+-/=?^_`{|}~", "x.y")]
    [InlineData("<\"john doe\"@example.com>", "\"john doe\"", "example.com")]
    [InlineData("<\"a>b\"@example.com>", "\"a>b\"", "example.com")]
    [InlineData("<\"q\\\"uote\"@example.com>", "\"q\\\"uote\"", "example.com")]
    [InlineData("<user@[192.0.2.1]>", "user", "[192.0.2.1]")]
    [InlineData("<user@[IPv6:2001:db8::1]>", "user", "[ipv6:2001:db8::1]")]
    [InlineData("<user@localhost>", "user", "localhost")]
    [InlineData("<user@x-1.example-2.com>", "user", "x-1.example-2.com")]
    [InlineData("<user@123.example>", "user", "123.example")]
    public void Valid_paths(string path, string localPart, string domain)
    {
        Assert.Equal(PathError.None, Parse(path, allowNull: false, out var mailbox, out _));
        Assert.NotNull(mailbox);
        Assert.Equal(localPart, mailbox.LocalPart);
        Assert.Equal(domain, mailbox.NormalizedDomain);
        Assert.Equal(localPart + "@" + domain, mailbox.Address);
    }

    [Theory]
    [InlineData("user@example.com")]
    [InlineData("<user@example.com")]
    [InlineData("<user>")]
    [InlineData("<@example.com>")]
    [InlineData("<user@>")]
    [InlineData("<.user@example.com>")]
    [InlineData("<user.@example.com>")]
    [InlineData("<us..er@example.com>")]
    [InlineData("<us er@example.com>")]
    [InlineData("<user@exa mple.com>")]
    [InlineData("<user@-example.com>")]
    [InlineData("<user@example-.com>")]
    [InlineData("<user@example..com>")]
    [InlineData("<user@example.com.>")]
    [InlineData("<user@exa_mple.com>")]
    [InlineData("<user@[300.0.0.1]>")]
    [InlineData("<user@[1.2.3]>")]
    [InlineData("<user@[IPv6:zz::1]>")]
    [InlineData("<user@[tag:content]>")]
    [InlineData("<\"unterminated@example.com>")]
    [InlineData("<\"bad\u0001\"@example.com>")]
    [InlineData("<us\u00e9r@example.com>")]
    [InlineData("<user@@example.com>")]
    [InlineData("<a@b@example.com>")]
    public void Invalid_paths(string path) =>
        Assert.NotEqual(PathError.None, Parse(path, allowNull: true, out _, out _));

    [Fact]
    public void Null_reverse_path_only_where_allowed()
    {
        Assert.Equal(PathError.None, Parse("<>", allowNull: true, out var mailbox, out _));
        Assert.Null(mailbox);
        Assert.Equal(PathError.NullPath, Parse("<>", allowNull: false, out _, out _));
    }

    [Theory]
    [InlineData("<@a.example,@b.example:user@c.example>")]
    [InlineData("<@a.example:user@c.example>")]
    public void Source_routes_are_refused(string path) =>
        Assert.Equal(PathError.SourceRoute, Parse(path, allowNull: false, out _, out _));

    [Theory]
    [InlineData("<Postmaster>")]
    [InlineData("<postmaster>")]
    [InlineData("<POSTMASTER>")]
    public void Postmaster_without_domain(string path)
    {
        Assert.Equal(PathError.None, Parse(path, allowNull: false, out var mailbox, out var postmaster));
        Assert.True(postmaster);
        Assert.Null(mailbox);
    }

    [Fact]
    public void Local_part_limit_is_64_octets()
    {
        Assert.Equal(PathError.None, Parse("<" + new string('a', 64) + "@example.com>", false, out _, out _));
        Assert.Equal(PathError.TooLong, Parse("<" + new string('a', 65) + "@example.com>", false, out _, out _));
    }

    [Fact]
    public void Label_limit_is_63_octets()
    {
        Assert.Equal(PathError.None, Parse("<a@" + new string('b', 63) + ".com>", false, out _, out _));
        Assert.NotEqual(PathError.None, Parse("<a@" + new string('b', 64) + ".com>", false, out _, out _));
    }

    [Fact]
    public void Domain_limit_is_255_octets_and_path_256()
    {
        var label = new string('d', 63);
        var domain255 = string.Join('.', label, label, label, new string('d', 63)); // 4*63 + 3 = 255
        Assert.Equal(255, domain255.Length);
        Assert.True(Mailbox.IsValidDomain(domain255));
        Assert.False(Mailbox.IsValidDomain(domain255 + "d"));

        // "<" + local + "@" + domain + ">" must fit in 256: 1 + 1 + 1 + 252 + 1 = 256.
        var domain252 = string.Join('.', label, label, label, new string('d', 60));
        Assert.Equal(PathError.None, Parse("<a@" + domain252 + ">", false, out _, out _));
        Assert.Equal(PathError.TooLong, Parse("<ab@" + domain252 + ">", false, out _, out _));
        Assert.Equal(PathError.TooLong, Parse("<a@" + domain255 + ">", false, out _, out _));
    }

    [Theory]
    [InlineData("example.com", true)]
    [InlineData("a", true)]
    [InlineData("xn--bcher-kva.example", true)]
    [InlineData("", false)]
    [InlineData("-a.com", false)]
    [InlineData("a..b", false)]
    [InlineData("a.b.", false)]
    [InlineData("a_b.com", false)]
    [InlineData("[192.0.2.1]", false)]
    public void IsValidDomain(string domain, bool valid) => Assert.Equal(valid, Mailbox.IsValidDomain(domain));

    [Fact]
    public void TryParse_bare_mailbox()
    {
        Assert.True(Mailbox.TryParse("Someone@Example.org", out var mailbox));
        Assert.Equal("Someone@example.org", mailbox.Address);
        Assert.Equal("Someone@Example.org", mailbox.ToString());
        Assert.False(Mailbox.TryParse("<someone@example.org>", out _));
        Assert.Equal(mailbox, Mailbox.TryParse("Someone@EXAMPLE.org", out var other) ? other : null);
    }
}
