using System.Net;
using MailMesh.ServiceDefaults;

namespace MailMesh.Dns.Tests;

public sealed class DnsOptionsTests
{
    [Fact]
    public void Defaults_are_valid_and_use_the_system_resolvers()
    {
        var options = new DnsOptions();

        Assert.Empty(options.Validate());
        Assert.Empty(options.ParseServers());
        Assert.Equal(TimeSpan.FromSeconds(5), options.Timeout);
        Assert.Equal(2, options.Retries);
        Assert.Equal(TimeSpan.FromSeconds(300), options.NegativeTtl);
    }

    [Fact]
    public void Servers_accept_addresses_with_and_without_ports()
    {
        var options = new DnsOptions { Servers = "192.0.2.1, 192.0.2.2:5353, ::1, [2001:db8::1]:5300" };

        Assert.Empty(options.Validate());
        Assert.Equal(
            [
                new IPEndPoint(IPAddress.Parse("192.0.2.1"), 53),
                new IPEndPoint(IPAddress.Parse("192.0.2.2"), 5353),
                new IPEndPoint(IPAddress.IPv6Loopback, 53),
                new IPEndPoint(IPAddress.Parse("2001:db8::1"), 5300),
            ],
            options.ParseServers());
    }

    [Fact]
    public void Invalid_server_names_the_key()
    {
        var options = new DnsOptions { Servers = "192.0.2.1,resolver.example" };

        var failure = Assert.Single(options.Validate());
        Assert.StartsWith("Dns:Servers: 'resolver.example'", failure, StringComparison.Ordinal);
        var ex = Assert.Throws<ConfigurationKeyException>(() => options.ParseServers());
        Assert.Equal("Dns:Servers", ex.Key);
    }

    [Fact]
    public void Invalid_values_name_their_keys()
    {
        var options = new DnsOptions
        {
            Timeout = TimeSpan.Zero,
            Retries = -1,
            MaxCacheEntries = 0,
            MinTtl = TimeSpan.FromMinutes(10),
            MaxTtl = TimeSpan.FromMinutes(1),
        };

        var failures = options.Validate().ToList();

        Assert.Contains(failures, f => f.StartsWith("Dns:Timeout:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Dns:Retries:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Dns:MaxCacheEntries:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Dns:MaxTtl:", StringComparison.Ordinal));
    }
}
