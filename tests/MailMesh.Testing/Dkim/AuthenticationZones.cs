using System.Security.Cryptography;
using System.Text;
using MailMesh.Testing.Dns;
using MimeKit.Cryptography;

namespace MailMesh.Testing.Dkim;

/// <summary>
/// A test DNS server with DKIM keys and DMARC records for inbound authentication tests (issue 10), and real DKIM
/// signatures made by MimeKit's <see cref="DkimSigner"/> with those keys. Domains (all under "test.", which is no
/// public suffix, so the organizational domain of x.bank.test is bank.test):
/// bank.test p=reject sp=quarantine relaxed; strict.test p=reject adkim=s aspf=s; quarantine.test p=quarantine;
/// monitor.test p=none; sampled.test p=reject pct=0; flaky.test (its _dmarc answers SERVFAIL); broken.test (p=bogus);
/// brokenrua.test (p=bogus with a valid rua=);
/// nodmarc.test (no record). Every domain has SPF "ip4:192.0.2.10 -all" and a key at s1._domainkey; mail.strict.test and
/// bank.test also sign; gone._domainkey.bank.test does not exist and down._domainkey.bank.test answers SERVFAIL.
/// </summary>
public sealed class AuthenticationZones : IDisposable
{
    /// <summary>The client address SPF permits for every domain here.</summary>
    public const string Client = "192.0.2.10";

    private readonly RSA _key = RSA.Create(2048);

    public AuthenticationZones()
    {
        Dns = TestDnsServer.Start();
        Dns.Zone = "test.";
        var publicKey = KeyRecord;
        foreach (var domain in new[] { "bank.test", "strict.test", "mail.strict.test", "quarantine.test", "monitor.test", "sampled.test", "flaky.test", "broken.test", "brokenrua.test", "nodmarc.test" })
        {
            Dns.AddTxt("s1._domainkey." + domain, publicKey);
            Dns.AddTxt(domain, "v=spf1 ip4:" + Client + " -all");
        }

        Dns.AddTxt("_dmarc.bank.test", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@bank.test")
            .AddTxt("_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s")
            .AddTxt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
            .AddTxt("_dmarc.monitor.test", "v=DMARC1; p=none")
            .AddTxt("_dmarc.sampled.test", "v=DMARC1; p=reject; pct=0")
            .AddTxt("_dmarc.flaky.test", "v=DMARC1; p=reject")
            .SetServerFailure("_dmarc.flaky.test")
            .AddTxt("_dmarc.broken.test", "v=DMARC1; p=bogus")
            .AddTxt("_dmarc.brokenrua.test", "v=DMARC1; p=bogus; rua=mailto:dmarc@brokenrua.test")
            .AddTxt("down._domainkey.bank.test", publicKey)
            .SetServerFailure("down._domainkey.bank.test");
    }

    public TestDnsServer Dns { get; }

    /// <summary>
    /// Policy's settings for checking inbound mail against these zones: DKIM and DMARC on (SPF evaluated for DMARC), keys,
    /// records and SPF from this server, <paramref name="authServId"/> as MailMesh's authserv-id, and relay networks
    /// elsewhere (192.0.2.0/24), so that a test client on 127.0.0.1 is a stranger whose mail is checked.
    /// </summary>
    public Dictionary<string, string> PolicySettings(string authServId) => new()
    {
        ["Policy:RelayNetworks"] = "192.0.2.0/24",
        ["Policy:AuthServId"] = authServId,
        ["Policy:Dkim:Enabled"] = "true",
        ["Policy:Dkim:DnsServers"] = Servers,
        ["Policy:Spf:DnsServers"] = Servers,
        ["Policy:Dmarc:Enabled"] = "true",
    };

    /// <summary>The DKIM key record (TXT at s1._domainkey.&lt;domain&gt;) of the key every signature and seal here uses.</summary>
    public string KeyRecord => "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(_key.ExportSubjectPublicKeyInfo());

    /// <summary>"127.0.0.1:port" for Policy:Dkim:DnsServers / Policy:Spf:DnsServers / Dns:Servers.</summary>
    public string Servers => Dns.EndPoint.ToString();

    /// <summary>A plain message (CRLF line ends) from <paramref name="from"/>.</summary>
    public static string Message(string from, string to = "user@mail.example", string subject = "Hello") =>
        $"From: Sender <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\n"
        + $"Message-ID: <{Guid.NewGuid():N}@{from[(from.IndexOf('@', StringComparison.Ordinal) + 1)..]}>\r\nMIME-Version: 1.0\r\n"
        + "Content-Type: text/plain; charset=utf-8\r\n\r\nA message to authenticate.\r\nSecond line.\r\n";

    /// <summary><paramref name="message"/> with a DKIM-Signature (rsa-sha256, relaxed/relaxed, this server's key) for
    /// <paramref name="domain"/> and <paramref name="selector"/> (a selector with no or a failing key record still signs).</summary>
    public byte[] Sign(string message, string domain, string selector = "s1") =>
        MimeKitSigning.DkimSign(Encoding.UTF8.GetBytes(message), _key, domain, selector);

    /// <summary><paramref name="message"/> with an ARC set (RFC 8617: ARC-Authentication-Results, ARC-Message-Signature,
    /// ARC-Seal) added by MimeKit's <see cref="ArcSigner"/> for <paramref name="domain"/>, as a forwarder would.</summary>
    public byte[] ArcSeal(byte[] message, string domain, string selector = "s1") =>
        MimeKitSigning.ArcSeal(message, _key, domain, selector, domain, "dkim", "pass");

    public void Dispose()
    {
        _key.Dispose();
        Dns.Dispose();
    }
}
