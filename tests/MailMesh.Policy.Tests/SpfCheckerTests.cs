using System.Net;
using MailMesh.Contracts;
using MailMesh.Policy.Spf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Policy.Tests;

/// <summary>RFC 7208 check_host() through <see cref="SpfChecker"/> against zones on the test DNS server.</summary>
public sealed class SpfCheckerTests(SpfZones zones) : IClassFixture<SpfZones>
{
    private SpfChecker NewChecker(FakeTimeProvider? time = null, TimeSpan? timeout = null) =>
        new(Options.Create(new SpfOptions
        {
            Enabled = true,
            DnsServers = zones.Servers,
            Timeout = timeout ?? TimeSpan.FromSeconds(5),
            AuthServId = "mx.mailmesh.test",
        }), time ?? new FakeTimeProvider(DateTimeOffset.UnixEpoch));

    [Theory]
    [MemberData(nameof(SpfZones.Cases), MemberType = typeof(SpfZones))]
    public async Task CheckHost_GivesTheRfc7208Result(string domain, string client, string expected)
    {
        using var checker = NewChecker();
        var evaluation = await checker.CheckAsync(IPAddress.Parse(client), "postmaster@" + domain, "client.example", CancellationToken.None);
        Assert.Equal(expected, ReceivedSpfHeader.Keyword(evaluation.Result));
        Assert.Equal(domain, evaluation.Domain);
    }

    [Fact]
    public async Task NullSender_ChecksTheHeloIdentity()
    {
        // RFC 7208 §2.4: MAIL FROM:<> is checked as postmaster@<HELO>.
        using var checker = NewChecker();
        var pass = await checker.CheckAsync(IPAddress.Parse(SpfZones.Client), string.Empty, "helo.spf.test", CancellationToken.None);
        Assert.Equal(SpfResult.Pass, pass.Result);
        Assert.Equal("postmaster@helo.spf.test", pass.Identity);

        var fail = await checker.CheckAsync(IPAddress.Parse("192.0.2.99"), string.Empty, "helo.spf.test", CancellationToken.None);
        Assert.Equal(SpfResult.Fail, fail.Result);
    }

    [Fact]
    public async Task AnAddressLiteralHelo_WithANullSender_IsNone()
    {
        using var checker = NewChecker();
        var result = await checker.CheckAsync(IPAddress.Parse(SpfZones.Client), string.Empty, "[192.0.2.10]", CancellationToken.None);
        Assert.Equal(SpfResult.None, result.Result);
    }

    [Fact]
    public async Task AServerThatDoesNotAnswer_IsATempErrorWithinTheTimeout()
    {
        zones.Dns.SetDelay("slow.spf.test", TimeSpan.FromSeconds(30));
        zones.Dns.AddTxt("slow.spf.test", "v=spf1 +all");
        using var checker = NewChecker(timeout: TimeSpan.FromMilliseconds(300));
        var result = await checker.CheckAsync(IPAddress.Parse(SpfZones.Client), "a@slow.spf.test", null, CancellationToken.None)
            .WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(SpfResult.TempError, result.Result);
    }

    [Fact]
    public async Task ABurst_CostsOneEvaluation_UntilTheCacheExpires()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        using var checker = NewChecker(time);
        var client = IPAddress.Parse(SpfZones.Client);
        var burst = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => checker.CheckAsync(client, $"user{i}@pass.spf.test", null, CancellationToken.None)));
        Assert.All(burst, r => Assert.Equal(SpfResult.Pass, r.Result));
        Assert.Equal("user7@pass.spf.test", burst[7].Identity);
        Assert.Equal(1, checker.Evaluations);

        // Another client is another evaluation; the same one after the cache duration is too.
        await checker.CheckAsync(IPAddress.Parse("192.0.2.11"), "a@pass.spf.test", null, CancellationToken.None);
        Assert.Equal(2, checker.Evaluations);
        time.Advance(TimeSpan.FromMinutes(6));
        await checker.CheckAsync(client, "a@pass.spf.test", null, CancellationToken.None);
        Assert.Equal(3, checker.Evaluations);
    }

    [Fact]
    public async Task ATempError_IsReusedOnlyBriefly()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        using var checker = NewChecker(time);
        var client = IPAddress.Parse(SpfZones.Client);
        Assert.Equal(SpfResult.TempError, (await checker.CheckAsync(client, "a@servfail.spf.test", null, CancellationToken.None)).Result);
        await checker.CheckAsync(client, "b@servfail.spf.test", null, CancellationToken.None);
        Assert.Equal(1, checker.Evaluations);
        time.Advance(SpfChecker.TempErrorCacheDuration);
        await checker.CheckAsync(client, "a@servfail.spf.test", null, CancellationToken.None);
        Assert.Equal(2, checker.Evaluations);
    }

    [Fact]
    public void ReceivedSpf_FollowsRfc7208Section91()
    {
        var header = ReceivedSpfHeader.Format(
            new SpfEvaluation(SpfResult.Pass, "example.com", "myname@example.com"),
            IPAddress.Parse("192.0.2.1"),
            "myname@example.com",
            "foo.example.com",
            "mybox.example.org");
        Assert.Equal(
            "Received-SPF: pass (mybox.example.org: domain of myname@example.com designates 192.0.2.1 as permitted sender)\r\n"
            + "\tclient-ip=192.0.2.1; envelope-from=\"myname@example.com\"; helo=foo.example.com;\r\n"
            + "\treceiver=mybox.example.org; identity=mailfrom\r\n",
            header);
    }

    [Fact]
    public void ReceivedSpf_QuotesAndEscapesWhatIsNotADotAtom()
    {
        var header = ReceivedSpfHeader.Format(
            new SpfEvaluation(SpfResult.Fail, "example.com", "\"a\\\"b\r\n\"@example.com"),
            IPAddress.Parse("192.0.2.1"),
            "\"a\\\"b\r\n\"@example.com",
            null,
            "mx.test");
        Assert.DoesNotContain("\r\n\r\n", header, StringComparison.Ordinal);
        Assert.Equal(3, header.Split("\r\n").Length - 1);
        Assert.Contains("envelope-from=\"\\\"a\\\\\\\"b\\\"@example.com\";", header, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("FailAction", "drop", "Policy:Spf:FailAction")]
    [InlineData("Timeout", "00:00:00", "Policy:Spf:Timeout")]
    [InlineData("CacheDuration", "-00:00:01", "Policy:Spf:CacheDuration")]
    [InlineData("MaxCacheEntries", "0", "Policy:Spf:MaxCacheEntries")]
    [InlineData("AuthServId", "mx test", "Policy:Spf:AuthServId")]
    [InlineData("DnsServers", "not-an-ip", "Policy:Spf:DnsServers")]
    [InlineData("DnsServers", "127.0.0.1:53,127.0.0.2:5353", "Policy:Spf:DnsServers")]
    public async Task ABadOption_FailsAtStart_NamingTheKey(string key, string value, string named)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var host = await PolicyTestHost.StartAsync(new() { ["Policy:Spf:" + key] = value });
            _ = host.Provider.GetRequiredService<IOptions<SpfOptions>>().Value;
        });
        Assert.Contains(named, error.ToString(), StringComparison.Ordinal);
    }
}

/// <summary>SPF in Policy's RCPT decision: only for clients that may not relay, with the configured actions.</summary>
public sealed class SpfPolicyTests(SpfZones zones) : IClassFixture<SpfZones>
{
    private const string Recipient = "user@local.test";

    private Task<PolicyTestHost> StartAsync(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?>
        {
            ["Policy:LocalDomains"] = "local.test",
            ["Policy:RelayNetworks"] = "10.0.0.0/8",
            ["Policy:Spf:Enabled"] = "true",
            ["Policy:Spf:AuthServId"] = "mx.mailmesh.test",
            ["Dns:Servers"] = zones.Servers,
        };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        return PolicyTestHost.StartAsync(all);
    }

    private static CheckRecipient Rcpt(string sender, string client = SpfZones.Client, string? user = null) => new()
    {
        ClientAddress = client,
        Sender = sender,
        Recipient = Recipient,
        AuthenticatedUser = user,
        Helo = "client.example",
    };

    [Fact]
    public async Task Fail_WithFailActionReject_Is550_5_7_23()
    {
        await using var host = await StartAsync(("Policy:Spf:FailAction", "reject"));
        var decision = await host.AskAsync(Rcpt("someone@fail.spf.test"));
        Assert.False(decision.Accepted);
        Assert.Equal(550, decision.ReplyCode);
        Assert.Equal("5.7.23", decision.EnhancedCode);
    }

    [Fact]
    public async Task Fail_ByDefault_IsAcceptedAndTagged()
    {
        await using var host = await StartAsync();
        var decision = await host.AskAsync(Rcpt("someone@fail.spf.test"));
        Assert.True(decision.Accepted);
        Assert.StartsWith("Received-SPF: fail (mx.mailmesh.test: ", decision.TraceHeader, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SoftFail_IsNeverRejected()
    {
        await using var host = await StartAsync(("Policy:Spf:FailAction", "reject"));
        var decision = await host.AskAsync(Rcpt("someone@softfail.spf.test"));
        Assert.True(decision.Accepted);
        Assert.StartsWith("Received-SPF: softfail ", decision.TraceHeader, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TempError_WithReject_Is451_4_7_24_AndPermError_550_5_7_24()
    {
        await using var host = await StartAsync(("Policy:Spf:TempErrorAction", "reject"), ("Policy:Spf:PermErrorAction", "reject"));
        var temp = await host.AskAsync(Rcpt("a@servfail.spf.test"));
        Assert.Equal((451, "4.7.24"), (temp.ReplyCode, temp.EnhancedCode));
        var perm = await host.AskAsync(Rcpt("a@two.spf.test"));
        Assert.Equal((550, "5.7.24"), (perm.ReplyCode, perm.EnhancedCode));
    }

    [Fact]
    public async Task Pass_IsAcceptedWithAReceivedSpfHeader()
    {
        await using var host = await StartAsync(("Policy:Spf:FailAction", "reject"));
        var decision = await host.AskAsync(Rcpt("someone@pass.spf.test"));
        Assert.True(decision.Accepted);
        Assert.StartsWith("Received-SPF: pass (mx.mailmesh.test: domain of someone@pass.spf.test designates 192.0.2.10", decision.TraceHeader, StringComparison.Ordinal);
        Assert.EndsWith("identity=mailfrom\r\n", decision.TraceHeader, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RelayAndAuthenticatedClients_AreNotChecked()
    {
        await using var host = await StartAsync(("Policy:Spf:FailAction", "reject"));
        var relay = await host.AskAsync(Rcpt("someone@fail.spf.test", client: "10.1.2.3"));
        var authenticated = await host.AskAsync(Rcpt("someone@fail.spf.test", user: "alice"));
        Assert.True(relay.Accepted);
        Assert.True(authenticated.Accepted);
        Assert.Null(relay.TraceHeader);
        Assert.Null(authenticated.TraceHeader);
    }

    [Fact]
    public async Task Disabled_ChecksNothing()
    {
        await using var host = await StartAsync(("Policy:Spf:Enabled", "false"), ("Policy:Spf:FailAction", "reject"));
        var decision = await host.AskAsync(Rcpt("someone@fail.spf.test"));
        Assert.True(decision.Accepted);
        Assert.Null(decision.TraceHeader);
    }

    [Fact]
    public async Task ARelayRefusal_ComesBeforeAnySpfLookup()
    {
        await using var host = await StartAsync(("Policy:Spf:FailAction", "reject"));
        var before = zones.Dns.QueryCount("relaytest.spf.test", "TXT");
        var decision = await host.AskAsync(Rcpt("someone@relaytest.spf.test") with { Recipient = "user@elsewhere.example" });
        Assert.Equal("5.7.1", decision.EnhancedCode);
        Assert.Equal(before, zones.Dns.QueryCount("relaytest.spf.test", "TXT"));
    }
}
