using System.Diagnostics;
using System.Net;
using System.Text;
using MailMesh.Policy.Content;
using MailMesh.Policy.Dmarc;
using MailMesh.Testing.Dkim;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Policy.Tests;

/// <summary>
/// Issue 10 inbound: DKIM (MimeKit DkimVerifier, real signatures, keys from the test DNS server), DMARC (records on
/// the test DNS server, organizational domains from Debian's Public Suffix List) and the one Authentication-Results
/// header, through <see cref="ContentChecks"/> as Ingress asks it.
/// </summary>
public sealed partial class InboundAuthenticationTests(AuthenticationZones zones) : IClassFixture<AuthenticationZones>
{
    private const string AuthServId = "mx.test.example";

    private async Task<PolicyTestHost> StartAsync(params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Policy:AuthServId"] = AuthServId,
            ["Policy:Dkim:Enabled"] = "true",
            ["Policy:Dkim:DnsServers"] = zones.Servers,
            ["Policy:Dkim:Timeout"] = "00:00:02",
            ["Policy:Arc:Enabled"] = "true",
            ["Policy:Dmarc:Enabled"] = "true",
            ["Policy:Spf:DnsServers"] = zones.Servers,
        };
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        return await PolicyTestHost.StartAsync(settings);
    }

    private static Task<ContentVerdict> CheckAsync(PolicyTestHost host, byte[] message, string sender, bool submitter = false) =>
        host.Provider.GetRequiredService<ContentChecks>().CheckAsync(
            new ContentCheckRequest
            {
                ClientAddress = IPAddress.Parse(AuthenticationZones.Client),
                ClientHelo = "client.test",
                Sender = sender,
                Recipients = ["user@mail.example"],
                IsSubmitter = submitter,
                Length = message.Length,
                OpenContent = () => new MemoryStream(message, writable: false),
            },
            CancellationToken.None);

    private byte[] Mail(string from, string? signAs = null, string selector = "s1", bool tamper = false)
    {
        var text = AuthenticationZones.Message(from);
        var bytes = signAs is null ? Encoding.UTF8.GetBytes(text) : zones.Sign(text, signAs, selector);
        return tamper ? Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(bytes).Replace("Second line.", "Second line!", StringComparison.Ordinal)) : bytes;
    }

    /// <summary>From, MAIL FROM, DKIM signing domain (null: unsigned), the dmarc= result and comment, the outcome
    /// ("accept", "junk", "550 5.7.1").</summary>
    public static TheoryData<string, string, string?, string, string> Cases => new()
    {
        // Aligned DKIM pass (relaxed: same domain), SPF passes for another domain.
        { "a@bank.test", "b@nodmarc.test", "bank.test", "dmarc=pass (p=reject dis=none) header.from=bank.test", "accept" },

        // Relaxed DKIM alignment: signed by the organizational domain, policy from the organizational record's sp=.
        { "a@news.bank.test", "b@nodmarc.test", "bank.test", "dmarc=pass (p=quarantine dis=none) header.from=news.bank.test", "accept" },

        // Forged: no signature, SPF not aligned: p=reject refuses.
        { "a@bank.test", "b@nodmarc.test", null, "dmarc=fail (p=reject dis=reject) header.from=bank.test", "550 5.7.1" },

        // Subdomain without a record of its own: the organizational domain's sp=quarantine.
        { "a@news.bank.test", "b@nodmarc.test", null, "dmarc=fail (p=quarantine dis=quarantine) header.from=news.bank.test", "junk" },

        // Strict DKIM alignment (adkim=s): a signature by a subdomain does not align.
        { "a@strict.test", "b@nodmarc.test", "mail.strict.test", "dmarc=fail (p=reject dis=reject) header.from=strict.test", "550 5.7.1" },

        // Strict SPF alignment (aspf=s): SPF passes for a subdomain, which does not align.
        { "a@strict.test", "b@mail.strict.test", null, "dmarc=fail (p=reject dis=reject) header.from=strict.test", "550 5.7.1" },

        // SPF alone aligned and passing.
        { "a@quarantine.test", "b@quarantine.test", null, "dmarc=pass (p=quarantine dis=none) header.from=quarantine.test", "accept" },
        { "a@quarantine.test", "b@nodmarc.test", null, "dmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.test", "junk" },
        { "a@monitor.test", "b@nodmarc.test", null, "dmarc=fail (p=none dis=none) header.from=monitor.test", "accept" },

        // pct=0: not sampled, the next lower policy (RFC 7489 §6.6.4).
        { "a@sampled.test", "b@nodmarc.test", null, "dmarc=fail (p=reject dis=quarantine) header.from=sampled.test", "junk" },
        { "a@flaky.test", "b@nodmarc.test", null, "dmarc=temperror (DMARC record lookup failed) header.from=flaky.test", "accept" },
        { "a@broken.test", "b@nodmarc.test", null, "dmarc=permerror (invalid DMARC record) header.from=broken.test", "accept" },

        // RFC 7489 §6.6.3: a record without a valid p= (or with an invalid sp=) but with a valid rua= URI is read as p=none.
        { "a@brokenrua.test", "b@nodmarc.test", null, "dmarc=fail (p=none dis=none) header.from=brokenrua.test", "accept" },
        { "a@nodmarc.test", "b@bank.test", null, "dmarc=none header.from=nodmarc.test", "accept" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task DMARC_gives_the_RFC_7489_result_and_disposition(string from, string mailFrom, string? signer, string dmarc, string outcome)
    {
        await using var host = await StartAsync();
        var verdict = await CheckAsync(host, Mail(from, signer), mailFrom);

        if (outcome.StartsWith('5'))
        {
            Assert.NotNull(verdict.Refusal);
            Assert.Equal(outcome, $"{verdict.Refusal!.ReplyCode} {verdict.Refusal.EnhancedCode}");
            Assert.Contains("DMARC", verdict.Refusal.Reason, StringComparison.Ordinal);
            return;
        }

        Assert.Null(verdict.Refusal);
        Assert.Equal(outcome == "junk", verdict.Junk);
        Assert.StartsWith("Authentication-Results: " + AuthServId + ";\r\n", verdict.Headers, StringComparison.Ordinal);
        Assert.Contains("\r\n\t" + dmarc + "\r\n", verdict.Headers, StringComparison.Ordinal);
        Assert.Equal(outcome == "junk", verdict.Headers.Contains("\r\nX-MailMesh-Junk: dmarc p=quarantine " + from[2..] + "\r\n", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_signed_message_gets_one_Authentication_Results_with_spf_dkim_arc_and_dmarc_that_authres_parses()
    {
        await using var host = await StartAsync();
        var verdict = await CheckAsync(host, Mail("a@bank.test", "bank.test"), "a@bank.test");

        Assert.Null(verdict.Refusal);
        Assert.Equal(
            "Authentication-Results: mx.test.example;\r\n"
            + "\tspf=pass smtp.mailfrom=a@bank.test;\r\n"
            + "\tdkim=pass header.d=bank.test header.s=s1 header.i=@bank.test;\r\n"
            + "\tarc=none;\r\n"
            + "\tdmarc=pass (p=reject dis=none) header.from=bank.test\r\n",
            verdict.Headers);

        // An independent RFC 8601 parser (Debian python3-authres) reads it back.
        var parsed = await AuthresAsync(verdict.Headers);
        Assert.Contains("mx.test.example", parsed, StringComparison.Ordinal);
        Assert.Contains("dmarc=pass", parsed, StringComparison.Ordinal);
        Assert.Contains("dkim=pass", parsed, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("s1", true, "dkim=fail (signature did not verify) header.d=bank.test header.s=s1", "550 5.7.1")]
    [InlineData("gone", false, "dkim=permerror (no key for signature) header.d=bank.test header.s=gone", "550 5.7.1")]
    [InlineData("down", false, "dkim=temperror (key lookup failed) header.d=bank.test header.s=down", "dmarc=temperror")]
    public async Task DKIM_fail_permerror_and_temperror_and_what_DMARC_makes_of_them(string selector, bool tamper, string dkim, string outcome)
    {
        await using var host = await StartAsync();
        var message = Mail("a@bank.test", "bank.test", selector, tamper);

        // Reported only (DMARC not enforced), to see the DKIM result.
        await using (var monitor = await StartAsync(("Policy:Dmarc:Enforce", "false")))
        {
            var reported = await CheckAsync(monitor, message, "b@nodmarc.test");
            Assert.Null(reported.Refusal);
            Assert.Contains("\t" + dkim, reported.Headers, StringComparison.Ordinal);
        }

        var verdict = await CheckAsync(host, message, "b@nodmarc.test");
        if (outcome.StartsWith('5'))
        {
            Assert.Equal(outcome, $"{verdict.Refusal!.ReplyCode} {verdict.Refusal.EnhancedCode}");
        }
        else
        {
            // An aligned DKIM temperror never turns into a DMARC fail (and a reject).
            Assert.Null(verdict.Refusal);
            Assert.Contains("\t" + outcome, verdict.Headers, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ARC_is_none_without_a_set_pass_for_a_valid_chain_and_fail_for_a_broken_one()
    {
        await using var host = await StartAsync(("Policy:Dmarc:Enforce", "false"));
        var sealedMessage = zones.ArcSeal(Mail("a@bank.test", "bank.test"), "bank.test");
        var broken = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(sealedMessage).Replace("Second line.", "Second line!", StringComparison.Ordinal));

        Assert.Contains("\tarc=none;", (await CheckAsync(host, Mail("a@bank.test", "bank.test"), "b@nodmarc.test")).Headers, StringComparison.Ordinal);
        Assert.Contains("\tarc=pass (i=1);", (await CheckAsync(host, sealedMessage, "b@nodmarc.test")).Headers, StringComparison.Ordinal);
        Assert.Contains("\tarc=fail (i=1);", (await CheckAsync(host, broken, "b@nodmarc.test")).Headers, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_DMARC_temperror_is_a_451_when_configured()
    {
        await using var host = await StartAsync(("Policy:Dmarc:TempErrorAction", "tempfail"));
        var verdict = await CheckAsync(host, Mail("a@flaky.test"), "b@nodmarc.test");
        Assert.Equal("451 4.7.1", $"{verdict.Refusal!.ReplyCode} {verdict.Refusal.EnhancedCode}");
    }

    [Fact]
    public async Task Submitters_are_not_checked_and_nothing_applies_when_everything_is_off()
    {
        await using (var host = await StartAsync())
        {
            var verdict = await CheckAsync(host, Mail("a@bank.test"), "b@nodmarc.test", submitter: true);
            Assert.False(verdict.Checked);
        }

        await using var off = await PolicyTestHost.StartAsync();
        var checks = off.Provider.GetRequiredService<ContentChecks>();
        Assert.False(checks.IsEmpty);
        var none = await CheckAsync(off, Mail("a@bank.test"), "b@nodmarc.test");
        Assert.False(none.Checked);
        Assert.Empty(none.Headers);
    }

    [Theory]
    [InlineData("mail.example.co.uk", "example.co.uk")]
    [InlineData("example.com", "example.com")]
    [InlineData("a.b.c.bank.test", "bank.test")]
    [InlineData("www.ck", "www.ck")]
    [InlineData("a.b.foo.ck", "b.foo.ck")]
    [InlineData("x.city.kawasaki.jp", "city.kawasaki.jp")]
    [InlineData("x.y.other.kawasaki.jp", "y.other.kawasaki.jp")]
    [InlineData("com", "com")]
    public void The_organizational_domain_comes_from_the_Public_Suffix_List(string domain, string organizational)
    {
        var list = PublicSuffixList.Load("/usr/share/publicsuffix/public_suffix_list.dat");
        Assert.True(list.Count > 5000);
        Assert.Equal(organizational, list.OrganizationalDomain(domain));
    }

    [Theory]
    [InlineData("v=DMARC1; p=reject; sp=quarantine; adkim=s", "Reject Quarantine strict-dkim 100")]
    [InlineData("v=DMARC1; p=bogus", null)]
    [InlineData("v=DMARC1; p=reject; sp=bogus", null)]
    [InlineData("v=DMARC1; p=bogus; rua=mailto:reports@example.com", "None - relaxed 100")]
    [InlineData("v=DMARC1; p=reject; sp=bogus; adkim=s; rua=nonsense, mailto:reports@example.com!10m", "None - relaxed 100")]
    [InlineData("v=DMARC1; p=bogus; rua=nonsense", null)]
    [InlineData("v=DMARC1; sp=reject; rua=https://reports.example.com/dmarc", "None - relaxed 100")]
    public void A_record_without_a_valid_p_or_sp_is_p_none_with_a_valid_rua_and_invalid_without(string text, string? expected)
    {
        // RFC 7489 §6.6.3.
        var record = DmarcRecord.Parse(text);
        Assert.Equal(expected, record is null ? null : $"{record.Policy} {record.SubdomainPolicy?.ToString() ?? "-"} {(record.StrictDkim ? "strict-dkim" : "relaxed")} {record.Percent}");
    }

    [Fact]
    public async Task A_missing_Public_Suffix_List_stops_start_naming_the_key()
    {
        await using var host = await PolicyTestHost.StartAsync(new()
        {
            ["Policy:Dmarc:Enabled"] = "true",
            ["Policy:Dmarc:PublicSuffixList"] = "/nonexistent/psl.dat",
        });
        var error = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => host.Provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<DmarcOptions>>().Value);
        Assert.Contains("Policy:Dmarc:PublicSuffixList", error.Message, StringComparison.Ordinal);
    }

    private static async Task<string> AuthresAsync(string header)
    {
        var info = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("import sys, authres\nh = authres.AuthenticationResultsHeader.parse(sys.stdin.read().strip().replace('\\r\\n\\t', ' '))\nprint(h.authserv_id)\nfor r in h.results: print(r)");
        using var process = Process.Start(info)!;
        await process.StandardInput.WriteAsync(header);
        process.StandardInput.Close();
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, error);
        return output;
    }
}
