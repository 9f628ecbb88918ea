namespace MailMesh.Smtp.Tests;

/// <summary>The one address/domain normaliser (issue 7 §6): split, IDNA, case and length rules.</summary>
public sealed class NormalizedAddressTests
{
    [Theory]
    [InlineData("user@example.com", "user", "example.com")]
    [InlineData("User.Name+Tag@Example.COM", "User.Name+Tag", "example.com")]
    [InlineData("\"a@b\"@example.com", "\"a@b\"", "example.com")]
    [InlineData("\"john doe\"@example.com", "\"john doe\"", "example.com")]
    [InlineData("\"q\\\"uote\"@example.com", "\"q\\\"uote\"", "example.com")]
    [InlineData("user%other.example@relay.example", "user%other.example", "relay.example")]
    [InlineData("user@bücher.example", "user", "xn--bcher-kva.example")]
    [InlineData("user@BÜCHER.Example", "user", "xn--bcher-kva.example")]
    [InlineData("user@XN--BCHER-KVA.example", "user", "xn--bcher-kva.example")]
    [InlineData("user@münchen.de", "user", "xn--mnchen-3ya.de")]
    [InlineData("user@例え.テスト", "user", "xn--r8jz45g.xn--zckzah")]
    [InlineData("josé@example.com", "josé", "example.com")]
    [InlineData("用户@Bücher.example", "用户", "xn--bcher-kva.example")]
    [InlineData("user@[192.0.2.1]", "user", "[192.0.2.1]")]
    [InlineData("user@[IPv6:2001:DB8::1]", "user", "[ipv6:2001:db8::1]")]
    public void Parses_and_normalises(string text, string local, string domain)
    {
        Assert.True(NormalizedAddress.TryParse(text, out var address), text);
        Assert.Equal(local, address.LocalPart);
        Assert.Equal(domain, address.Domain);
        Assert.Equal(local + "@" + domain, address.Address);
    }

    [Theory]
    [InlineData("")]
    [InlineData("user")]
    [InlineData("@example.com")]
    [InlineData("user@")]
    [InlineData("user@example.com.")] // no trailing dot in SMTP (RFC 5321 §4.1.2)
    [InlineData("user@bücher.example.")]
    [InlineData("user@example..com")]
    [InlineData("user@.example.com")]
    [InlineData("user@-example.com")]
    [InlineData("user@exa_mple.com")]
    [InlineData("user@exa mple.com")]
    [InlineData("us er@example.com")]
    [InlineData(".user@example.com")]
    [InlineData("user.@example.com")]
    [InlineData("us..er@example.com")]
    [InlineData("user@example.com>")]
    [InlineData("a@b@example.com")] // '@' outside quotes
    [InlineData("\"unterminated@example.com")]
    [InlineData("\"a\"b\"@example.com")]
    [InlineData("user\u0001@example.com")]
    [InlineData("user@xn--zz.example")] // invalid Punycode
    [InlineData("user@xn--.example")]
    [InlineData("user@[192.0.2.256]")]
    [InlineData("user@[1.2.3]")]
    [InlineData("user@[IPv6:zz::1]")]
    [InlineData("user@[example.com]")]
    public void Refuses(string text)
    {
        Assert.False(NormalizedAddress.TryParse(text, out _), text);
        Assert.Throws<FormatException>(() => NormalizedAddress.Parse(text));
    }

    [Fact]
    public void Splits_at_the_last_at_sign()
    {
        var address = NormalizedAddress.Parse("\"user@other.example\"@relay.example");
        Assert.Equal("\"user@other.example\"", address.LocalPart);
        Assert.Equal("relay.example", address.Domain);
    }

    [Fact]
    public void Enforces_the_RFC_5321_length_limits()
    {
        var label63 = new string('a', 63);
        Assert.True(NormalizedAddress.TryParse(new string('l', 64) + "@example.com", out _));
        Assert.False(NormalizedAddress.TryParse(new string('l', 65) + "@example.com", out _));
        // Octets, not characters: 32 two-octet characters fit, 33 do not (RFC 6531 §3.3).
        Assert.True(NormalizedAddress.TryParse(new string('é', 32) + "@example.com", out _));
        Assert.False(NormalizedAddress.TryParse(new string('é', 33) + "@example.com", out _));
        Assert.True(NormalizedAddress.TryParse("user@" + label63 + ".example", out _));
        Assert.False(NormalizedAddress.TryParse("user@" + label63 + "a.example", out _));
        // A U-label whose A-label is longer than 63 octets.
        Assert.False(NormalizedAddress.TryParse("user@" + new string('a', 60) + "ü.example", out _));
        // RFC 5321 §4.5.3.1.2 allows 255 octets, but a name must fit DNS (RFC 1035 §3.1: 255 octets on the wire, so
        // 253 as text), which IDNA (UTS #46) enforces too; the path "<local@domain>" is at most 256, so with a
        // one-octet local part the domain has at most 252.
        var domain253 = string.Join('.', label63, label63, label63, new string('b', 61));
        Assert.Equal(253, domain253.Length);
        Assert.True(NormalizedAddress.TryNormalizeDomain(domain253, out _));
        Assert.False(NormalizedAddress.TryNormalizeDomain("x" + domain253, out _));
        var domain252 = domain253[1..];
        Assert.True(NormalizedAddress.TryParse("u@" + domain252, out _));
        Assert.False(NormalizedAddress.TryParse("uv@" + domain252, out _));
        Assert.False(NormalizedAddress.TryParse("u@" + domain253, out _));
    }

    [Fact]
    public void Local_part_is_preserved_and_compared_case_insensitively_only_by_the_comparison_key()
    {
        var upper = NormalizedAddress.Parse("John.Doe@Example.COM");
        var lower = NormalizedAddress.Parse("john.doe@example.com");
        Assert.Equal("John.Doe@example.com", upper.Address);
        Assert.NotEqual(upper, lower);
        Assert.Equal(lower.ComparisonKey, upper.ComparisonKey);
        Assert.Equal(NormalizedAddress.Parse("user@bücher.example"), NormalizedAddress.Parse("user@xn--bcher-kva.EXAMPLE"));
    }

    [Fact]
    public void International_local_parts_need_SMTPUTF8()
    {
        Assert.True(NormalizedAddress.Parse("josé@example.com").IsInternational);
        Assert.False(NormalizedAddress.Parse("jose@bücher.example").IsInternational);
    }

    [Theory]
    [InlineData("Example.COM", "example.com")]
    [InlineData("bücher.example", "xn--bcher-kva.example")]
    [InlineData("Bücher.Example", "xn--bcher-kva.example")]
    [InlineData("xn--bcher-kva.example", "xn--bcher-kva.example")]
    [InlineData("[IPv6:::1]", "[ipv6:::1]")]
    public void Normalises_domains(string domain, string expected)
    {
        Assert.True(NormalizedAddress.TryNormalizeDomain(domain, out var normalized));
        Assert.Equal(expected, normalized);
        Assert.Equal(expected, NormalizedAddress.NormalizeDomain(domain));
    }

    [Theory]
    [InlineData("")]
    [InlineData("example.com.")]
    [InlineData("xn--zz.example")]
    [InlineData("exa_mple.com")]
    public void Refuses_domains(string domain)
    {
        Assert.False(NormalizedAddress.TryNormalizeDomain(domain, out _));
        Assert.Throws<ArgumentException>(() => NormalizedAddress.NormalizeDomain(domain));
    }

    [Fact]
    public void The_SMTP_parser_and_Mailbox_use_the_same_domain_form()
    {
        Assert.True(Mailbox.TryGetAsciiDomain("BÜCHER.example", out var ascii));
        Assert.Equal(NormalizedAddress.NormalizeDomain("bücher.example"), ascii);
        Assert.False(Mailbox.TryGetAsciiDomain("[192.0.2.1]", out _));
    }

    [Fact]
    public void WithAsciiDomain_converts_only_a_non_ASCII_domain()
    {
        Assert.Equal("José@xn--bcher-kva.example", NormalizedAddress.WithAsciiDomain("José@bücher.example"));
        Assert.Equal("User@Example.com", NormalizedAddress.WithAsciiDomain("User@Example.com"));
        Assert.Throws<ArgumentException>(() => NormalizedAddress.WithAsciiDomain("user@exa_mple.例"));
    }
    // Issue 7 §6: one address, however it is spelled, must get one decision (relay, routing, suppression).
    [Theory]
    [InlineData("alice@example.com", "\"alice\"@example.com")] // a quoted-string of a dot-string is the same mailbox
    [InlineData("alice@example.com", "\"Al\\ice\"@Example.com")] // quoted-pairs are semantically invisible
    [InlineData("john.doe@example.com", "\"John.Doe\"@example.com")]
    [InlineData("\"john doe\"@example.com", "\"john\\ doe\"@example.com")] // still needs quotes: canonical minimal quoting
    [InlineData("user@example.com", "user@EXAMPLE\uFF0ECOM")] // fullwidth full stop (UTS #46 maps it to '.')
    [InlineData("user@example.com", "user@example\u3002com")] // ideographic full stop
    [InlineData("user@example.com", "user@\uFF45xample.com")] // fullwidth letter
    [InlineData("user@[192.0.2.1]", "user@[192.000.002.001]")] // Snum = 1*3DIGIT (RFC 5321 §4.1.3)
    [InlineData("user@[192.0.2.1]", "user@[IPv6:::ffff:192.0.2.1]")] // the same host as an IPv4-mapped IPv6 literal
    [InlineData("user@[IPv6:2001:db8::1]", "user@[IPv6:2001:0DB8:0:0:0:0:0:1]")]
    public void Two_spellings_of_one_address_have_one_comparison_key(string canonical, string variant)
    {
        Assert.True(NormalizedAddress.TryParse(canonical, out var a), canonical);
        Assert.True(NormalizedAddress.TryParse(variant, out var b), variant);
        Assert.Equal(a.Domain, b.Domain);
        Assert.Equal(a.ComparisonKey, b.ComparisonKey);
    }

    [Theory]
    [InlineData("\"a@b\"@example.com", "\"a@b\"@example.com")]
    [InlineData("\"q\\\"uote\"@example.com", "\"q\\\"uote\"@example.com")]
    [InlineData("\"a..b\"@example.com", "\"a..b\"@example.com")]
    [InlineData("\"\\a\"@example.com", "a@example.com")]
    public void Comparison_key_of_a_quoted_local_part(string text, string key)
    {
        Assert.Equal(key, NormalizedAddress.Parse(text).ComparisonKey);
    }

    [Theory]
    [InlineData("user@example.com\u3002")] // a trailing dot however it is written
    [InlineData("user@example.com\uFF0E")]
    [InlineData("user@example\uFF20com")] // a fullwidth '@' is an '@' in the domain: refused, not encoded
    [InlineData("user\uFF20example.com")]
    public void Refuses_dot_and_at_look_alikes(string text)
    {
        Assert.False(NormalizedAddress.TryParse(text, out var parsed), text + " -> " + parsed.Address);
    }
}
