using System.Net;
using MailMesh.Contracts;
using MailMesh.Policy.Dnsbl;
using MailMesh.Testing.Dns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Policy.Tests;

/// <summary>DNSBL/DNSWL at connect (RFC 5782) against lists served by the test DNS server.</summary>
public sealed class DnsblTests : IDisposable
{
    private const string Listed = "192.0.2.99";
    private const string Clean = "192.0.2.10";
    private const string Allowed = "192.0.2.77";
    private const string ListedV6 = "2001:db8::99";

    private readonly TestDnsServer _dns = TestDnsServer.Start();

    public DnsblTests()
    {
        _dns.AddAddress("99.2.0.192.bl.test", "127.0.0.2", ttl: 60)
            .AddTxt("99.2.0.192.bl.test", "listed for testing")
            .AddAddress("77.2.0.192.bl.test", "127.0.0.2")
            .AddAddress("77.2.0.192.wl.test", "127.0.10.3")
            .AddAddress("99.2.0.192.codes.test", "127.0.0.10")
            .AddAddress("99.2.0.192.spamhaus.test", "127.255.255.254")
            .AddAddress(DnsblChecker.Reverse(IPAddress.Parse(ListedV6)) + ".bl.test", "127.0.0.2");
        _dns.SetServerFailure(DnsblChecker.Reverse(IPAddress.Parse(Listed)) + ".broken.test");
        _dns.SetDelay(DnsblChecker.Reverse(IPAddress.Parse(Listed)) + ".slow.test", TimeSpan.FromSeconds(30));
        _dns.AddAddress(DnsblChecker.Reverse(IPAddress.Parse(Listed)) + ".slow.test", "127.0.0.2");
        _dns.NegativeTtl = 30;
    }

    public void Dispose() => _dns.Dispose();

    private Dictionary<string, string?> Settings(params (string Zone, double Weight, string? Codes)[] zones)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Policy:Dnsbl:Enabled"] = "true",
            ["Policy:Dnsbl:Timeout"] = "00:00:01",
            ["Dns:Servers"] = _dns.EndPoint.ToString(),
        };
        for (var i = 0; i < zones.Length; i++)
        {
            settings[$"Policy:Dnsbl:Zones:{i}:Zone"] = zones[i].Zone;
            settings[$"Policy:Dnsbl:Zones:{i}:Weight"] = zones[i].Weight.ToString(System.Globalization.CultureInfo.InvariantCulture);
            settings[$"Policy:Dnsbl:Zones:{i}:ReplyCodes"] = zones[i].Codes;
        }

        return settings;
    }

    private async Task<PolicyDecision> ConnectAsync(Dictionary<string, string?> settings, string client)
    {
        await using var host = await PolicyTestHost.StartAsync(settings);
        return await host.AskAsync(new CheckConnection { ClientAddress = client });
    }

    [Fact]
    public async Task AListedClient_IsRefusedAtConnectWith554NamingTheList()
    {
        var decision = await ConnectAsync(Settings(("bl.test", 1, null)), Listed);
        Assert.False(decision.Accepted);
        Assert.Equal(554, decision.ReplyCode);
        Assert.Equal("5.7.1", decision.EnhancedCode);
        Assert.Equal("Service unavailable; client [192.0.2.99] blocked using bl.test", decision.Reason);
    }

    [Fact]
    public async Task AClientNotListed_IsAccepted()
    {
        var decision = await ConnectAsync(Settings(("bl.test", 1, null)), Clean);
        Assert.True(decision.Accepted);
    }

    [Fact]
    public async Task AnAllowListWithANegativeWeight_OutweighsABlockList()
    {
        var settings = Settings(("bl.test", 1, null), ("wl.test", -5, null));
        Assert.True((await ConnectAsync(settings, Allowed)).Accepted);
        Assert.False((await ConnectAsync(settings, Listed)).Accepted);
    }

    [Fact]
    public async Task BelowTheThreshold_IsAccepted()
    {
        var settings = Settings(("bl.test", 0.5, null));
        Assert.True((await ConnectAsync(settings, Listed)).Accepted);
        settings["Policy:Dnsbl:Threshold"] = "0.5";
        Assert.False((await ConnectAsync(settings, Listed)).Accepted);
    }

    [Fact]
    public async Task OnlyTheConfiguredReplyCodes_Count()
    {
        Assert.True((await ConnectAsync(Settings(("codes.test", 1, "127.0.0.2,127.0.0.3")), Listed)).Accepted);
        Assert.False((await ConnectAsync(Settings(("codes.test", 1, "127.0.0.10")), Listed)).Accepted);
        Assert.False((await ConnectAsync(Settings(("codes.test", 1, null)), Listed)).Accepted);
    }

    [Fact]
    public async Task ADnsFailure_NeverRefuses()
    {
        // SERVFAIL, a list that does not answer within the timeout, and an error answer (127.255.255.x) all count as
        // "not known": the client is accepted.
        Assert.True((await ConnectAsync(Settings(("broken.test", 1, null)), Listed)).Accepted);
        Assert.True((await ConnectAsync(Settings(("slow.test", 1, null)), Listed)).Accepted);
        Assert.True((await ConnectAsync(Settings(("spamhaus.test", 1, null)), Listed)).Accepted);
        // ...and the other lists still count.
        Assert.False((await ConnectAsync(Settings(("broken.test", 1, null), ("bl.test", 1, null)), Listed)).Accepted);
    }

    [Fact]
    public async Task AnIpv6Client_IsLookedUpByReversedNibbles()
    {
        Assert.Equal(
            "9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2",
            DnsblChecker.Reverse(IPAddress.Parse(ListedV6)));
        Assert.Equal("99.2.0.192", DnsblChecker.Reverse(IPAddress.Parse(Listed)));
        var decision = await ConnectAsync(Settings(("bl.test", 1, null)), ListedV6);
        Assert.Equal(554, decision.ReplyCode);
        Assert.True((await ConnectAsync(Settings(("bl.test", 1, null)), "2001:db8::10")).Accepted);
    }

    [Fact]
    public async Task RelayNetworks_AreExempt()
    {
        var settings = Settings(("bl.test", 1, null));
        settings["Policy:RelayNetworks"] = "192.0.2.0/24";
        Assert.True((await ConnectAsync(settings, Listed)).Accepted);
        Assert.Equal(0, _dns.TotalQueries);
    }

    [Fact]
    public async Task Answers_AreCachedForTheirTtl()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        using var checker = new DnsblChecker(Options.Create(new DnsblOptions
        {
            Enabled = true,
            Zones = [new DnsblZone { Zone = "bl.test" }],
            DnsServers = _dns.EndPoint.ToString(),
        }), time, NullLogger<DnsblChecker>.Instance);

        // Listed, TTL 60 s.
        Assert.True((await checker.CheckAsync(IPAddress.Parse(Listed), CancellationToken.None)).Refused);
        Assert.True((await checker.CheckAsync(IPAddress.Parse(Listed), CancellationToken.None)).Refused);
        Assert.Equal(1, checker.Queries);
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.True((await checker.CheckAsync(IPAddress.Parse(Listed), CancellationToken.None)).Refused);
        Assert.Equal(2, checker.Queries);

        // Not listed: NXDOMAIN, cached for the SOA's negative TTL (30 s).
        Assert.False((await checker.CheckAsync(IPAddress.Parse(Clean), CancellationToken.None)).Refused);
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.False((await checker.CheckAsync(IPAddress.Parse(Clean), CancellationToken.None)).Refused);
        Assert.Equal(3, checker.Queries);
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.False((await checker.CheckAsync(IPAddress.Parse(Clean), CancellationToken.None)).Refused);
        Assert.Equal(4, checker.Queries);
    }

    [Fact]
    public async Task BadSettings_NameTheKey()
    {
        var settings = Settings(("not a zone", 1, "10.0.0.1"));
        settings["Policy:Dnsbl:Threshold"] = "0";
        await using var host = await PolicyTestHost.StartAsync(settings);
        var ex = Assert.Throws<OptionsValidationException>(() => host.Provider.GetRequiredService<IOptions<DnsblOptions>>().Value);
        Assert.Contains("Policy:Dnsbl:Zones:0:Zone: 'not a zone' must be a DNS zone such as zen.spamhaus.org", ex.Failures);
        Assert.Contains("Policy:Dnsbl:Zones:0:ReplyCodes: '10.0.0.1' is not an address in 127.0.0.0/8", ex.Failures);
        Assert.Contains(ex.Failures, f => f.StartsWith("Policy:Dnsbl:Threshold:", StringComparison.Ordinal));
    }
}
