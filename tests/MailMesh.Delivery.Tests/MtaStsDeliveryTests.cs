using System.Text;
using MailMesh.Contracts;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Https;
using MailMesh.Testing.Smtp;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// MTA-STS (RFC 8461) against a local HTTPS policy server: the TXT record in a test DNS server, the policy fetched
/// over HTTPS with a certificate from a test CA (Delivery:Tls:MtaSts:ExtraTrustedRootsPath), every policy host reached
/// at the local server (TestOnlyPolicyEndpoint).
/// </summary>
public sealed class MtaStsDeliveryTests : IAsyncLifetime
{
    private const string Domain = "sts.test";
    private static readonly byte[] Content = Encoding.ASCII.GetBytes("From: a@origin.test\r\nSubject: sts\r\n\r\nSecret.\r\n");
    private readonly TestCertificates _ca = TestCertificates.CreateAuthority();
    private readonly string _bundle = Path.Combine(Path.GetTempPath(), $"mailmesh-sts-ca-{Guid.NewGuid():N}.pem");
    private readonly TestDnsServer _policyDns = TestDnsServer.Start();
    private MtaStsPolicyServer _https = null!;

    public async Task InitializeAsync()
    {
        _ca.WritePem(_bundle);
        _https = await MtaStsPolicyServer.StartAsync(_ca.IssueServer("mta-sts." + Domain));
        // TTL 0: nothing caches the TXT record, so a test can change the id.
        _policyDns.AddTxt("_mta-sts." + Domain, "v=STSv1; id=20261202T000000;", ttl: 0);
    }

    public async Task DisposeAsync()
    {
        await _https.DisposeAsync();
        _policyDns.Dispose();
        _ca.Dispose();
        File.Delete(_bundle);
    }

    private async Task<DeliveryFixture> StartAsync()
    {
        var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Delivery:Tls:TrustedCertificatesPath"] = _bundle,
            ["Delivery:Tls:DnsServers"] = _policyDns.EndPoint.ToString(),
            ["Delivery:Tls:DnsTimeout"] = "00:00:02",
            ["Delivery:Tls:MtaSts:Enabled"] = "true",
            ["Delivery:Tls:MtaSts:ExtraTrustedRootsPath"] = _bundle,
            ["Delivery:Tls:MtaSts:TestOnlyPolicyEndpoint"] = _https.Endpoint,
            ["Delivery:Tls:MtaSts:FetchTimeout"] = "00:00:10",
            ["Delivery:Tls:Reporting:Enabled"] = "true",
        });
        f.Route(Domain, f.Sink);
        return f;
    }

    private static Task<DeliveryAttempted> DeliverAsync(DeliveryFixture f) =>
        f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, Domain, "rcpt@" + Domain));

    private static TlsReportIncrement Report(DeliveryFixture f) =>
        Assert.Single(f.Services.GetRequiredService<TlsReportRecorder>().TakePending(), r => r.Key.PolicyType != "no-policy-found");

    [Fact]
    public async Task Enforce_with_a_matching_MX_and_a_valid_certificate_delivers_over_verified_TLS()
    {
        _https.SetPolicy(Domain, "enforce", ["mx1." + Domain]);
        await using var f = await StartAsync();
        f.Sink.Tls = _ca.IssueServer("mx1." + Domain);

        var attempt = await DeliverAsync(f);
        var result = Assert.Single(attempt.Results);

        Assert.True(result.Outcome == DeliveryOutcome.Delivered, result.ReplyText);
        Assert.True(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
        Assert.Equal("mta-sts", attempt.Tls?.Verification);
        var report = Report(f);
        Assert.Equal(("sts", 1L), (report.Key.PolicyType, report.Successes));
        Assert.Contains("mode: enforce", report.Key.PolicyStrings, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Enforce_with_a_wildcard_pattern_matches_one_label()
    {
        _https.SetPolicy(Domain, "enforce", ["*." + Domain]);
        await using var f = await StartAsync();
        f.Sink.Tls = _ca.IssueServer("mx1." + Domain);

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single((await DeliverAsync(f)).Results).Outcome);
    }

    [Fact]
    public async Task Enforce_with_a_non_matching_MX_defers_without_connecting()
    {
        _https.SetPolicy(Domain, "enforce", ["mx.elsewhere.example"]);
        await using var f = await StartAsync();
        f.Sink.Tls = _ca.IssueServer("mx1." + Domain);

        var result = Assert.Single((await DeliverAsync(f)).Results);

        Assert.Equal(DeliveryOutcome.Deferred, result.Outcome);
        Assert.Equal("4.7.5", result.EnhancedCode);
        Assert.Equal(BounceClass.TlsFailure, result.Class);
        Assert.Contains("MTA-STS", result.ReplyText, StringComparison.Ordinal);
        Assert.Empty(f.Sink.Commands);
        Assert.Equal("validation-failure", Assert.Single(Report(f).Failures).Key.ResultType);
    }

    [Fact]
    public async Task Enforce_with_an_untrusted_certificate_defers_and_never_falls_back_to_clear_text()
    {
        _https.SetPolicy(Domain, "enforce", ["mx1." + Domain]);
        await using var f = await StartAsync();
        f.Sink.Tls = TestCertificates.SelfSigned("mx1." + Domain);

        var result = Assert.Single((await DeliverAsync(f)).Results);

        Assert.Equal(DeliveryOutcome.Deferred, result.Outcome);
        Assert.Equal("4.7.5", result.EnhancedCode);
        Assert.Empty(f.Sink.Messages);
        Assert.DoesNotContain(f.Sink.Commands, c => c.Contains("MAIL FROM", StringComparison.Ordinal));
        var report = Report(f);
        Assert.Equal(0, report.Successes);
        Assert.Equal("certificate-not-trusted", Assert.Single(report.Failures).Key.ResultType);
    }

    [Fact]
    public async Task Enforce_with_a_certificate_for_another_name_defers()
    {
        _https.SetPolicy(Domain, "enforce", ["mx1." + Domain]);
        await using var f = await StartAsync();
        f.Sink.Tls = _ca.IssueServer("other.example");

        var result = Assert.Single((await DeliverAsync(f)).Results);

        Assert.Equal(DeliveryOutcome.Deferred, result.Outcome);
        Assert.Empty(f.Sink.Messages);
        Assert.Equal("certificate-host-mismatch", Assert.Single(Report(f).Failures).Key.ResultType);
    }

    [Fact]
    public async Task Testing_mode_delivers_and_records_the_failure()
    {
        _https.SetPolicy(Domain, "testing", ["mx1." + Domain]);
        await using var f = await StartAsync();
        f.Sink.Tls = TestCertificates.SelfSigned("mx1." + Domain);

        var result = Assert.Single((await DeliverAsync(f)).Results);

        Assert.True(result.Outcome == DeliveryOutcome.Delivered, result.ReplyText);
        Assert.True(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
        var report = Report(f);
        Assert.Equal(0, report.Successes);
        Assert.Equal("certificate-not-trusted", Assert.Single(report.Failures).Key.ResultType);
        Assert.Contains("mode: testing", report.Key.PolicyStrings, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_policy_that_cannot_be_fetched_is_reported_and_mail_goes_on()
    {
        _https.SetStatus(Domain, 404);
        await using var f = await StartAsync();

        var result = Assert.Single((await DeliverAsync(f)).Results);

        Assert.Equal(DeliveryOutcome.Delivered, result.Outcome);
        Assert.Equal("sts-policy-fetch-error", Assert.Single(Report(f).Failures).Key.ResultType);
    }

    [Fact]
    public async Task Redirects_are_not_followed()
    {
        _https.SetPolicy("elsewhere.test", "enforce", ["mx.elsewhere.example"]);
        _https.SetRedirect(Domain, "https://mta-sts.elsewhere.test/.well-known/mta-sts.txt");
        await using var f = await StartAsync();

        var result = Assert.Single((await DeliverAsync(f)).Results);

        Assert.Equal(DeliveryOutcome.Delivered, result.Outcome);
        Assert.Equal(0, _https.Fetches("elsewhere.test"));
        Assert.Equal("sts-policy-fetch-error", Assert.Single(Report(f).Failures).Key.ResultType);
    }

    [Fact]
    public async Task The_policy_is_cached_until_the_TXT_id_changes()
    {
        _https.SetPolicy(Domain, "enforce", ["mx1." + Domain]);
        await using var f = await StartAsync();
        f.Sink.Tls = _ca.IssueServer("mx1." + Domain);

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single((await DeliverAsync(f)).Results).Outcome);
        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single((await DeliverAsync(f)).Results).Outcome);
        Assert.Equal(1, _https.Fetches(Domain));

        // RFC 8461 §5.1: a new id means a new policy: fetched again, and this one no longer lists the MX.
        _policyDns.Remove("_mta-sts." + Domain).AddTxt("_mta-sts." + Domain, "v=STSv1; id=20261203T000000;", ttl: 0);
        _https.SetPolicy(Domain, "enforce", ["mx9." + Domain]);

        var result = Assert.Single((await DeliverAsync(f)).Results);
        Assert.Equal(2, _https.Fetches(Domain));
        Assert.Equal(DeliveryOutcome.Deferred, result.Outcome);
    }

    [Theory]
    [InlineData("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n", true)]
    [InlineData("version: STSv1\r\nmode: testing\r\nmx: mail.example.com\r\nmax_age: 604800\r\n", true)]
    [InlineData("version: STSv1\nmode: none\nmax_age: 86400\n", true)]
    [InlineData("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false)]
    [InlineData("version: STSv1\nmode: enforce\nmax_age: 86400\n", false)]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.example\n", false)]
    public void Policies_parse_as_RFC_8461_section_3_2_says(string text, bool valid)
    {
        MtaStsPolicy? policy;
        try
        {
            policy = MtaStsPolicy.Parse("1", text, TimeSpan.FromDays(365));
        }
        catch (FormatException)
        {
            policy = null;
        }

        Assert.Equal(valid, policy is not null);
    }

    [Theory]
    [InlineData("mail.example.com", true)]
    [InlineData("MAIL.example.com.", true)]
    [InlineData("mx1.example.net", true)]
    [InlineData("a.mx1.example.net", false)]
    [InlineData("example.net", false)]
    [InlineData("other.example.com", false)]
    public void MX_patterns_match_as_RFC_8461_section_4_1_says(string host, bool matches)
    {
        var policy = MtaStsPolicy.Parse("1", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n", TimeSpan.FromDays(365))!;
        Assert.Equal(matches, policy.Matches(host));
    }

    [Theory]
    [InlineData("v=STSv1; id=20160831085700Z;", "20160831085700Z")]
    [InlineData("v=STSv1;id=abc", "abc")]
    [InlineData("v=STSv2; id=abc;", null)]
    [InlineData("v=STSv1; id=has-dash;", null)]
    public void The_TXT_record_gives_the_policy_id(string text, string? id) =>
        Assert.Equal(id, MtaStsPolicy.ParseTxtId([text]));

    [Fact]
    public void Two_STS_TXT_records_mean_no_policy() =>
        Assert.Null(MtaStsPolicy.ParseTxtId(["v=STSv1; id=a;", "v=STSv1; id=b;"]));
}

/// <summary>Bad TLS policy settings stop start-up with a message naming the key.</summary>
public sealed class TlsPolicyOptionsTests
{
    [Theory]
    [InlineData("Dane:Enabled", "true", "Delivery:Tls:Dane:Enabled")]
    [InlineData("DnsServers", "not-an-address", "Delivery:Tls:DnsServers")]
    [InlineData("MtaSts:TestOnlyPolicyEndpoint", "no-port", "Delivery:Tls:MtaSts:TestOnlyPolicyEndpoint")]
    [InlineData("MtaSts:ExtraTrustedRootsPath", "/nonexistent/roots.pem", "Delivery:Tls:MtaSts:ExtraTrustedRootsPath")]
    [InlineData("Reporting:SendReports", "true", "Delivery:Tls:Reporting:SendReports")]
    [InlineData("Reporting:SendAfter", "1.00:00:00", "Delivery:Tls:Reporting:SendAfter")]
    public void Invalid_settings_name_their_key(string key, string value, string named)
    {
        var options = new DeliveryOptions();
        var configuration = new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [key] = value })
            .Build();
        Microsoft.Extensions.Configuration.ConfigurationBinder.Bind(configuration, options.Tls);

        Assert.Contains(options.Validate(), error => error.StartsWith(named + ":", StringComparison.Ordinal));
    }

    [Fact]
    public void The_defaults_are_valid_and_everything_is_off() =>
        Assert.True(new DeliveryTlsOptions() is { Dane.Enabled: false, MtaSts.Enabled: false, Reporting.Enabled: false } options &&
            !new DeliveryOptions().Validate().Any(e => e.StartsWith("Delivery:Tls", StringComparison.Ordinal)) && options.DnsServers is null);
}
