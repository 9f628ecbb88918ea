using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using MailMesh.Testing.Dkim;

namespace MailMesh.Policy.Tests;

/// <summary>
/// MailMesh's SPF, DKIM, ARC and DMARC results against an independent implementation, mailauth (postalsys, npm; see
/// <see cref="Mailauth"/>), on the same messages and the same test DNS server.
/// </summary>
public sealed partial class InboundAuthenticationTests
{
    /// <summary>Every DMARC case of <see cref="Cases"/> (pass; fail under p=reject, quarantine and none; relaxed and strict
    /// alignment; sp= for a subdomain; pct=0; no record; temperror; permerror), the DKIM failures, and ARC none, pass and fail:
    /// name, From, MAIL FROM, DKIM signer (null: unsigned), selector, tampered, ARC-sealed.</summary>
    private IEnumerable<(string Name, string From, string MailFrom, byte[] Message)> ComparisonMessages()
    {
        foreach (var row in Cases)
        {
            var (from, mailFrom, signer) = ((string)row[0], (string)row[1], (string?)row[2]);
            yield return ($"{from} (MAIL FROM {mailFrom}, signed by {signer ?? "nobody"})", from, mailFrom, Mail(from, signer));
        }

        yield return ("tampered body", "a@bank.test", "b@nodmarc.test", Mail("a@bank.test", "bank.test", tamper: true));
        yield return ("key gone", "a@bank.test", "b@nodmarc.test", Mail("a@bank.test", "bank.test", "gone"));
        yield return ("ARC-sealed", "a@bank.test", "b@nodmarc.test", zones.ArcSeal(Mail("a@bank.test", "bank.test"), "bank.test"));
        var broken = Encoding.UTF8.GetString(zones.ArcSeal(Mail("a@bank.test", "bank.test"), "bank.test"));
        yield return ("ARC-sealed, then altered", "a@bank.test", "b@nodmarc.test", Encoding.UTF8.GetBytes(broken.Replace("Second line.", "Second line!", StringComparison.Ordinal)));
    }

    /// <summary>
    /// Where mailauth (4.13.3) and MailMesh disagree, what mailauth says and why MailMesh's result is the RFC's. Any other
    /// difference fails the test, and so does one of these going away (a new mailauth to look at again).
    /// </summary>
    private static readonly Dictionary<string, (string Mailauth, string Why)> KnownDifferences = new()
    {
        // mailauth's getAlignment is given { strict } (an object, always truthy) and in its strict branch compares the
        // signer's or MAIL FROM's organizational domain with the From domain: strict.test signed by mail.strict.test aligns.
        ["a@strict.test (MAIL FROM b@nodmarc.test, signed by mail.strict.test)"] = (
            "spf=pass dkim=[pass] arc=none dmarc=pass p=reject dis=none",
            "RFC 7489 §3.1.1: in strict mode only an exact match of the d= domain and the From domain aligns"),
        ["a@strict.test (MAIL FROM b@mail.strict.test, signed by nobody)"] = (
            "spf=pass dkim=[none] arc=none dmarc=pass p=reject dis=none",
            "RFC 7489 §3.1.2: in strict mode the MAIL FROM domain must match the From domain exactly"),

        // mailauth takes any p= value, even an undefined one, as the policy.
        ["a@broken.test (MAIL FROM b@nodmarc.test, signed by nobody)"] = (
            "spf=pass dkim=[none] arc=none dmarc=fail p=bogus dis=bogus",
            "RFC 7489 §6.6.3: a record without a valid p= and without a valid rua= means no DMARC processing (permerror, RFC 7489 §11.2)"),
        ["a@brokenrua.test (MAIL FROM b@nodmarc.test, signed by nobody)"] = (
            "spf=pass dkim=[none] arc=none dmarc=fail p=bogus dis=bogus",
            "RFC 7489 §6.6.3: a record without a valid p= but with a valid rua= URI is read as p=none"),

        // mailauth reports every DKIM failure as neutral (as Gmail does for a body hash mismatch).
        ["tampered body"] = (
            "spf=pass dkim=[neutral] arc=none dmarc=fail p=reject dis=reject",
            "RFC 8601 §2.7.1: fail is a signature that did not verify (RFC 6376 §6.1.3: PERMFAIL, body hash did not verify)"),
        ["key gone"] = (
            "spf=pass dkim=[neutral] arc=none dmarc=fail p=reject dis=reject",
            "RFC 6376 §6.1.2: no key record is PERMFAIL (no key for signature), RFC 8601 §2.7.1 permerror"),
        ["ARC-sealed, then altered"] = (
            "spf=pass dkim=[neutral] arc=fail dmarc=fail p=reject dis=reject",
            "as for the tampered body: the DKIM signature did not verify, RFC 8601 §2.7.1 fail"),
    };

    [Fact]
    public async Task Mailauth_gives_the_same_SPF_DKIM_ARC_and_DMARC_results_on_the_same_zones()
    {
        var messages = ComparisonMessages().ToList();
        var theirs = await Mailauth.AuthenticateAsync(
            messages.Select(m => new MailauthCase(AuthenticationZones.Client, "client.test", m.MailFrom, m.Message)).ToList(), zones.Dns);

        // DMARC not enforced, so that every message gets its Authentication-Results (a refused one gets none).
        await using var host = await StartAsync(("Policy:Dmarc:Enforce", "false"));
        var differences = new List<string>();
        for (var i = 0; i < messages.Count; i++)
        {
            var (name, from, mailFrom, message) = messages[i];
            var ours = Summary((await CheckAsync(host, message, mailFrom)).Headers);
            var mailauth = Summary(theirs[i]);
            var expected = KnownDifferences.TryGetValue(name, out var known) ? known.Mailauth : ours;
            if (mailauth != expected)
            {
                differences.Add($"{name}:\n  MailMesh {ours}\n  mailauth {mailauth}\n  expected {expected}{(known.Why is null ? "" : " (known difference: " + known.Why + ")")}");
            }
        }

        Assert.True(differences.Count == 0, string.Join('\n', differences));
        Assert.Empty(KnownDifferences.Keys.Except(messages.Select(m => m.Name)));
    }

    /// <summary>"spf=pass dkim=[pass] arc=none dmarc=fail p=reject dis=reject" from MailMesh's Authentication-Results.</summary>
    private static string Summary(string headers)
    {
        string Result(string method) => Regex.Match(headers, @"\t" + method + @"=(\w+)").Groups[1].Value;
        var dkim = Regex.Matches(headers, @"\tdkim=(\w+)").Select(m => m.Groups[1].Value);
        var dmarc = Regex.Match(headers, @"\tdmarc=(\w+)(?: \(p=(\w+) dis=(\w+))?");
        var policy = dmarc.Groups[2].Success ? $" p={dmarc.Groups[2].Value} dis={dmarc.Groups[3].Value}" : "";
        return $"spf={Result("spf")} dkim=[{string.Join(',', dkim)}] arc={Result("arc")} dmarc={dmarc.Groups[1].Value}{policy}";
    }

    /// <summary>The same summary from mailauth's answer. mailauth reports pct= and leaves sampling to the caller: the
    /// disposition of a failure is the policy, or the next lower one when pct=0 (RFC 7489 §6.6.4; no zone here has another pct).</summary>
    private static string Summary(MailauthResult result)
    {
        var dkim = result.Dkim is { Count: > 0 } ? string.Join(',', result.Dkim) : "none";
        var text = $"spf={result.Spf} dkim=[{dkim}] arc={result.Arc} dmarc={result.Dmarc?.Result}";
        if (result.Dmarc is { Policy: { } policy } dmarc && dmarc.Result is "pass" or "fail")
        {
            policy = policy.ToLowerInvariant();
            var disposition = dmarc.Result == "pass" ? "none" : dmarc.Pct == 0 ? policy switch { "reject" => "quarantine", _ => "none" } : policy;
            text += $" p={policy} dis={disposition}";
        }

        return text;
    }
}
