using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using MimeKit.Cryptography;
using Xunit;

namespace MailMesh.Testing.Dkim;

/// <summary>
/// ARC end to end (RFC 8617, issue 10), the same story for the standalone and the distributed mode: MailMesh is the MX of
/// <see cref="Domain"/> (Policy:LocalDomains) and relays its mail on to that domain's own server (a test sink). Three
/// messages from bank.test (DKIM-signed, p=reject) arrive over SMTP from a stranger (127.0.0.1; relay networks are
/// elsewhere) whose envelope is forwarder.test's (SPF pass, not aligned): one with no ARC set, one that forwarder.test
/// sealed (i=1, cv=none), one whose i=1 seal was altered on the way. Policy verifies DKIM, ARC and DMARC at the end of
/// DATA (<see cref="AuthServId"/>), Delivery seals with relay.test's key (Dkim:Arc), and the copies that reach the sink
/// are checked by dkimpy's arc_verify, MimeKit's ArcVerifier and mailauth, each with the keys from the test DNS server.
/// </summary>
public sealed class ArcRelay : IDisposable
{
    /// <summary>The domain MailMesh relays for, whose MX (a sink) the tests point at 127.0.0.1.</summary>
    public const string Domain = "dest.test";

    /// <summary>The recipient of every message.</summary>
    public const string Recipient = "user@" + Domain;

    /// <summary>MailMesh's authserv-id (Policy:AuthServId).</summary>
    public const string AuthServId = "mx.relay.test";

    private const string Envelope = "list@forwarder.test";

    private readonly RSA _sealKey = RSA.Create(2048);
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("mailmesh-arc-relay-");

    public ArcRelay()
    {
        // The upstream forwarder seals with the zones' key; MailMesh seals as relay.test with a key of its own.
        Zones.Dns.AddTxt("s1._domainkey.forwarder.test", Zones.KeyRecord)
            .AddTxt("forwarder.test", "v=spf1 ip4:127.0.0.1 -all")
            .AddTxt("arc1._domainkey.relay.test", "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(_sealKey.ExportSubjectPublicKeyInfo()));
        File.WriteAllText(Path.Combine(_directory.FullName, "arc1.relay.test.pem"), _sealKey.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>The DKIM keys and DMARC records (bank.test and the others), the forwarder's key and MailMesh's seal key.</summary>
    public AuthenticationZones Zones { get; } = new();

    /// <summary>What MailMesh needs for the story, beside its usual test settings (Dns:Servers and Delivery:Port for the sink).</summary>
    public Dictionary<string, string> Settings => new(Zones.PolicySettings(AuthServId))
    {
        ["Policy:LocalDomains"] = Domain,
        ["Policy:Arc:Enabled"] = "true",
        ["Dkim:Keys:0:Domain"] = "relay.test",
        ["Dkim:Keys:0:Selector"] = "arc1",
        ["Dkim:Keys:0:KeyPath"] = Path.Combine(_directory.FullName, "arc1.relay.test.pem"),
        ["Dkim:Keys:0:Sign"] = "false",
        ["Dkim:Arc:Enabled"] = "true",
        ["Dkim:Arc:Domain"] = "relay.test",
        ["Dkim:Arc:Selector"] = "arc1",

        // Delivery's own setting (a Delivery replica has no Policy settings in a real deployment).
        ["Dkim:Arc:AuthServId"] = AuthServId,
    };

    /// <summary>Sends the three messages to MailMesh's SMTP port as a stranger would; each is accepted.</summary>
    public async Task SendAsync(int smtpPort)
    {
        foreach (var (subject, message, _, _, _) in Messages())
        {
            var reply = await RawSmtp.SendAsync(smtpPort, Envelope, Recipient, message, helo: "mx.forwarder.test");
            Assert.True(reply.Code == 250, $"{subject}: {reply.Code} {reply.Text}");
        }
    }

    /// <summary>
    /// Checks the copies the sink received: each carries MailMesh's set on top (i=, cv= from the inbound chain, d=relay.test)
    /// above our Authentication-Results, the sender's DKIM signature still verifies, and three independent verifiers give
    /// the chain the same verdict: pass, except for the chain that was broken when it arrived.
    /// </summary>
    public async Task VerifyAsync(IEnumerable<byte[]> delivered)
    {
        var copies = delivered.ToDictionary(data => Regex.Match(Encoding.ASCII.GetString(data), @"\r\nSubject: ([^\r\n]*)").Groups[1].Value);
        var expected = Messages().ToList();
        Assert.Equal(expected.Select(m => m.Subject).Order(), copies.Keys.Order());
        var mailauth = await Mailauth.AuthenticateAsync(
            expected.Select(m => new MailauthCase("192.0.2.99", "mx.relay.test", Envelope, copies[m.Subject])).ToList(), Zones.Dns);

        for (var n = 0; n < expected.Count; n++)
        {
            var (subject, _, instance, cv, arc) = expected[n];
            var data = copies[subject];
            var text = Encoding.ASCII.GetString(data);
            var context = $"{subject}:\n{text}";

            Assert.True(text.StartsWith($"ARC-Seal: i={instance}; a=rsa-sha256; t=", StringComparison.Ordinal), context);
            Assert.Matches($@"^ARC-Seal: i={instance}; a=rsa-sha256; t=\d+; cv={cv};\r\n\td=relay\.test; s=arc1; b=", text);
            Assert.Contains($"\r\nARC-Message-Signature: i={instance}; a=rsa-sha256; c=relaxed/relaxed; d=relay.test; s=arc1;", text, StringComparison.Ordinal);
            Assert.Contains($"\r\nARC-Authentication-Results: i={instance}; {AuthServId};", text, StringComparison.Ordinal);
            Assert.Contains($"\tarc={arc}", text, StringComparison.Ordinal);
            Assert.Contains("\tdkim=pass header.d=bank.test", text, StringComparison.Ordinal);
            Assert.Contains("\tdmarc=pass (p=reject dis=none) header.from=bank.test", text, StringComparison.Ordinal);

            var dkim = await DkimVerifiers.DkimpyAsync(data, Zones.Dns);
            Assert.True(dkim.Pass, $"dkimpy (DKIM): {dkim.Output}\n{context}");

            var chain = arc == "fail" ? "fail" : "pass";
            var dkimpy = await DkimVerifiers.DkimpyArcAsync(data, Zones.Dns);
            Assert.True(dkimpy.Pass == (chain == "pass"), $"dkimpy arc_verify: {dkimpy.Output}\n{context}");
            Assert.True(dkimpy.Output.Contains("arc: " + chain, StringComparison.Ordinal), $"dkimpy arc_verify: {dkimpy.Output}\n{context}");
            if (chain == "fail")
            {
                // Our message signature verified and our seal is where the chain ends, as RFC 8617 §5.1.1 wants it.
                Assert.True(dkimpy.Output.Contains($"ARC-Seal[{instance}] reported failure", StringComparison.Ordinal), $"dkimpy arc_verify: {dkimpy.Output}\n{context}");
            }

            var mimeKit = await DkimVerifiers.MimeKitArcAsync(data, Zones.Dns);
            Assert.True(mimeKit == (chain == "pass" ? ArcSignatureValidationResult.Pass : ArcSignatureValidationResult.Fail), $"MimeKit ArcVerifier: {mimeKit}\n{context}");
            Assert.True(mailauth[n].Arc == chain, $"mailauth arc: {mailauth[n].Arc}\n{context}");
        }
    }

    /// <summary>Subject, message, the instance and cv= MailMesh's seal must have, and the arc= result of our
    /// Authentication-Results.</summary>
    private IEnumerable<(string Subject, byte[] Message, int Instance, string Cv, string Arc)> Messages()
    {
        byte[] Signed(string subject) => Zones.Sign(AuthenticationZones.Message("statements@bank.test", Recipient, subject), "bank.test");

        yield return ("not sealed before", Signed("not sealed before"), 1, "none", "none");
        yield return ("sealed by the forwarder", Zones.ArcSeal(Signed("sealed by the forwarder"), "forwarder.test"), 2, "pass", "pass (i=1)");

        // The forwarder's seal altered on the way (the first character of its b= signature): the chain arrives broken.
        var broken = Encoding.ASCII.GetString(Zones.ArcSeal(Signed("seal broken on the way"), "forwarder.test"));
        var seal = Regex.Match(broken, @"ARC-Seal:(?:[^\r\n]|\r\n[ \t])*?(?<=[;\s])b=(?:\r\n)?[ \t]*(?<first>[A-Za-z0-9+/])");
        var first = seal.Groups["first"];
        Assert.True(first.Success, "no b= in the forwarder's ARC-Seal");
        broken = broken[..first.Index] + (first.Value == "A" ? "B" : "A") + broken[(first.Index + 1)..];
        yield return ("seal broken on the way", Encoding.ASCII.GetBytes(broken), 2, "fail", "fail");
    }

    public void Dispose()
    {
        Zones.Dispose();
        _sealKey.Dispose();
        _directory.Delete(recursive: true);
    }
}
