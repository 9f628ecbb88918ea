using System.Globalization;
using MailMesh.Testing.Dns;

namespace MailMesh.Policy.Tests;

/// <summary>
/// One test DNS server with the SPF zones every SPF test uses (RFC 7208 results and limits), and the cases: a domain,
/// the client address, the HELO and the result check_host must give.
/// </summary>
public sealed class SpfZones : IDisposable
{
    public const string Client = "192.0.2.10";
    public const string Client6 = "2001:db8::5";

    public SpfZones()
    {
        Dns = TestDnsServer.Start();
        Dns.Zone = "test.";
        Dns.AddTxt("pass.spf.test", "v=spf1 ip4:192.0.2.0/24 -all")
            .AddTxt("fail.spf.test", "v=spf1 ip4:198.51.100.1 -all")
            .AddTxt("softfail.spf.test", "v=spf1 ip4:198.51.100.1 ~all")
            .AddTxt("neutral.spf.test", "v=spf1 ?all")
            .AddTxt("notspf.spf.test", "google-site-verification=abc")
            .AddTxt("two.spf.test", "v=spf1 -all")
            .AddTxt("two.spf.test", "v=spf1 +all")
            .AddTxt("syntax.spf.test", "v=spf1 ip4:192.0.2.300 -all")
            .AddTxt("badmech.spf.test", "v=spf1 frobnicate:example.test -all")
            .AddTxt("include.spf.test", "v=spf1 include:pass.spf.test -all")
            .AddTxt("includefail.spf.test", "v=spf1 include:fail.spf.test ~all")
            .AddTxt("a.spf.test", "v=spf1 a:host.spf.test -all")
            .AddAddress("host.spf.test", Client)
            .AddTxt("mx.spf.test", "v=spf1 mx -all")
            .AddMx("mx.spf.test", 10, "mail.mx.spf.test")
            .AddAddress("mail.mx.spf.test", Client)
            .AddTxt("cidr.spf.test", "v=spf1 ip4:192.0.2.8/29 ip6:2001:db8::/32 -all")
            .AddTxt("redirect.spf.test", "v=spf1 redirect=pass.spf.test")
            .AddTxt("exp.spf.test", "v=spf1 -all exp=explain.spf.test")
            .AddTxt("explain.spf.test", "%{i} is not one of %{d}'s designated mail servers.")
            .AddTxt("helo.spf.test", "v=spf1 ip4:192.0.2.10 -all")
            .AddTxt("servfail.spf.test", "v=spf1 -all")
            .SetServerFailure("servfail.spf.test")
            .AddTxt("includeservfail.spf.test", "v=spf1 include:servfail.spf.test -all")
            .AddTxt("void.spf.test", "v=spf1 a:v1.spf.test a:v2.spf.test a:v3.spf.test ip4:192.0.2.10 -all")
            .AddTxt("twovoid.spf.test", "v=spf1 a:v1.spf.test a:v2.spf.test ip4:192.0.2.10 -all");

        // RFC 7208 §4.6.4: eleven terms that query DNS (the hosts exist, so none is a void lookup).
        var many = "v=spf1";
        for (var i = 1; i <= 11; i++)
        {
            var host = string.Create(CultureInfo.InvariantCulture, $"h{i}.spf.test");
            Dns.AddAddress(host, "198.51.100." + i.ToString(CultureInfo.InvariantCulture));
            many += " a:" + host;
            if (i == 10)
            {
                Dns.AddTxt("ten.spf.test", many + " ip4:192.0.2.10 -all");
            }
        }

        Dns.AddTxt("eleven.spf.test", many + " ip4:192.0.2.10 -all");
    }

    public TestDnsServer Dns { get; }

    public string Servers => Dns.EndPoint.ToString();

    /// <summary>Domain, client, RFC 7208 result. The sender is postmaster@domain.</summary>
    public static TheoryData<string, string, string> Cases => new()
    {
        { "pass.spf.test", Client, "pass" },
        { "fail.spf.test", Client, "fail" },
        { "softfail.spf.test", Client, "softfail" },
        { "neutral.spf.test", Client, "neutral" },
        { "nosuch.spf.test", Client, "none" },
        { "notspf.spf.test", Client, "none" },
        { "servfail.spf.test", Client, "temperror" },
        { "includeservfail.spf.test", Client, "temperror" },
        { "two.spf.test", Client, "permerror" },
        { "syntax.spf.test", Client, "permerror" },
        { "badmech.spf.test", Client, "permerror" },
        { "eleven.spf.test", Client, "permerror" },
        { "ten.spf.test", Client, "pass" },
        { "void.spf.test", Client, "permerror" },
        { "twovoid.spf.test", Client, "pass" },
        { "include.spf.test", Client, "pass" },
        { "includefail.spf.test", Client, "softfail" },
        { "a.spf.test", Client, "pass" },
        { "a.spf.test", "192.0.2.11", "fail" },
        { "mx.spf.test", Client, "pass" },
        { "mx.spf.test", "192.0.2.11", "fail" },
        { "cidr.spf.test", Client, "pass" },
        { "cidr.spf.test", "192.0.2.16", "fail" },
        { "cidr.spf.test", Client6, "pass" },
        { "cidr.spf.test", "2001:db9::1", "fail" },
        { "redirect.spf.test", Client, "pass" },
        { "exp.spf.test", Client, "fail" },
    };

    public void Dispose() => Dns.Dispose();
}
