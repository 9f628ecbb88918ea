using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MailMesh.Delivery.Dkim;
using MailMesh.Testing.Dkim;
using MailMesh.Testing.Dns;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// ARC sealing (RFC 8617) of forwarded mail: the set made over the exact octets is checked by MimeKit's ArcVerifier and
/// dkimpy's arc_verify with the public keys served by a test DNS server; a fresh chain gets i=1 cv=none, a message with
/// a valid i=1 set (made by MimeKit's ArcSigner upstream) gets i=2 cv=pass; local submissions and a disabled sealer are
/// left alone.
/// </summary>
public sealed class ArcSealerTests : IDisposable
{
    private const string AuthServId = "mx.mailmesh.test";

    private const string Message =
        "Received: from client.test by mx.mailmesh.test; Wed, 2 Dec 2026 10:00:00 +0000\r\n" +
        "From: \"Sender\" <alice@origin.test>\r\n" +
        "To: list@mailmesh.test\r\n" +
        "Subject: forwarded\r\n" +
        "  folded subject\r\n" +
        "Date: Wed, 2 Dec 2026 10:00:00 +0000\r\n" +
        "Message-ID: <1@origin.test>\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "\r\n" +
        "Hello  \t world \r\n" +
        ".leading dot\r\n" +
        "\r\n";

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("mailmesh-arc-");
    private readonly TestDnsServer _dns = TestDnsServer.Start();
    private bool _published;

    public void Dispose()
    {
        _dns.Dispose();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task A_forwarded_message_gets_an_i1_set_that_MimeKit_and_dkimpy_verify()
    {
        var sealer = Sealer(enabled: true);
        var content = Encoding.ASCII.GetBytes(
            $"Authentication-Results: {AuthServId};\r\n\tspf=pass smtp.mailfrom=origin.test;\r\n\tdkim=none; arc=none\r\n" + Message);

        var result = sealer.Seal(content);
        Assert.True(result.IsSealed, result.Outcome);
        Assert.Equal(1, result.Instance);
        Assert.Equal("none", result.Cv);
        var fields = Encoding.ASCII.GetString(result.Fields.Span);
        Assert.StartsWith("ARC-Seal: i=1; a=rsa-sha256;", fields, StringComparison.Ordinal);
        Assert.Contains("cv=none", fields, StringComparison.Ordinal);
        Assert.Contains($"ARC-Authentication-Results: i=1; {AuthServId};\r\n\tspf=pass smtp.mailfrom=origin.test;", fields, StringComparison.Ordinal);

        byte[] sent = [.. result.Fields.Span, .. content];
        Assert.Equal(ArcSignatureValidationResult.Pass, await MimeKitArcAsync(sent));
        var dkimpy = await DkimpyArcAsync(sent);
        Assert.True(dkimpy.Pass, dkimpy.Output);

        // The verifiers really check: a changed body breaks the seal's message signature.
        var tampered = Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(sent).Replace("leading dot", "leading dog", StringComparison.Ordinal));
        Assert.Equal(ArcSignatureValidationResult.Fail, await MimeKitArcAsync(tampered));
        Assert.False((await DkimpyArcAsync(tampered)).Pass);
    }

    [Fact]
    public async Task A_message_with_a_valid_i1_set_gets_i2_with_cv_pass()
    {
        // Upstream forwarder seals with MimeKit's ArcSigner; Ingress then stamps our A-R with arc=pass on top.
        using var upstreamKey = RSA.Create(2048);
        _dns.AddTxt("up._domainkey.forwarder.test", "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(upstreamKey.ExportSubjectPublicKeyInfo()));
        var upstream = UpstreamSeal(Encoding.ASCII.GetBytes(Message), upstreamKey);
        Assert.Equal(ArcSignatureValidationResult.Pass, await MimeKitArcAsync(upstream));

        var content = Encoding.ASCII.GetBytes(
            $"Authentication-Results: {AuthServId}; spf=pass smtp.mailfrom=origin.test;\r\n\tarc=pass (i=1) header.oldest-pass=0\r\n"
            + Encoding.ASCII.GetString(upstream));
        var result = Sealer(enabled: true).Seal(content);
        Assert.True(result.IsSealed, result.Outcome);
        Assert.Equal(2, result.Instance);
        Assert.Equal("pass", result.Cv);

        byte[] sent = [.. result.Fields.Span, .. content];
        Assert.Equal(ArcSignatureValidationResult.Pass, await MimeKitArcAsync(sent));
        var dkimpy = await DkimpyArcAsync(sent);
        Assert.True(dkimpy.Pass, dkimpy.Output);

        // Policy found the chain broken (arc=fail): our set says cv=fail, and the chain fails for everyone after us.
        var failed = Encoding.ASCII.GetBytes(
            $"Authentication-Results: {AuthServId}; arc=fail\r\n" + Encoding.ASCII.GetString(upstream));
        var failing = Sealer(enabled: true).Seal(failed);
        Assert.Equal("fail", failing.Cv);
        Assert.Equal(ArcSignatureValidationResult.Fail, await MimeKitArcAsync([.. failing.Fields.Span, .. failed]));

        // And a chain that ends in cv=fail is not sealed again.
        Assert.Equal("chain_failed", Sealer(enabled: true).Seal([.. failing.Fields.Span, .. failed]).Outcome);
    }

    [Fact]
    public void A_local_submission_and_someone_elses_results_are_not_sealed()
    {
        var sealer = Sealer(enabled: true);
        Assert.Equal("not_forwarded", sealer.Seal(Encoding.ASCII.GetBytes(Message)).Outcome);

        // An Authentication-Results of another server is not ours.
        var foreign = Encoding.ASCII.GetBytes("Authentication-Results: mx.other.test; spf=pass smtp.mailfrom=origin.test\r\n" + Message);
        Assert.False(sealer.Seal(foreign).IsSealed);
    }

    [Fact]
    public void Disabled_sealing_is_off_and_bad_settings_name_the_key()
    {
        Assert.False(Sealer(enabled: false).IsEnabled);

        var options = new DkimOptions { Arc = new ArcSealOptions { Enabled = true, Domain = "mailmesh.test", Selector = "nope", AuthServId = AuthServId } };
        options.Keys.Add(new DkimKeyOptions { Domain = "mailmesh.test", Selector = "arc1", KeyPath = WriteKey(), Algorithm = "rsa-sha256" });
        Assert.Contains(options.Validate(), f => f.StartsWith("Dkim:Arc:Selector:", StringComparison.Ordinal));

        options.Arc.Selector = "arc1";
        options.Arc.AuthServId = null;
        Assert.Contains(options.Validate(), f => f.StartsWith("Dkim:Arc:AuthServId:", StringComparison.Ordinal));

        options.Arc.AuthServId = AuthServId;
        Assert.Empty(options.Validate());
    }

    private ArcSealer Sealer(bool enabled)
    {
        var path = WriteKey();
        if (!_published)
        {
            _published = true;
            using var key = DkimPrivateKey.FromPem(File.ReadAllText(path));
            _dns.AddTxt("arc1._domainkey.mailmesh.test", key.RecordText());
        }

        var options = new DkimOptions { Arc = new ArcSealOptions { Enabled = enabled, Domain = "mailmesh.test", Selector = "arc1", AuthServId = AuthServId } };
        options.Keys.Add(new DkimKeyOptions { Domain = "mailmesh.test", Selector = "arc1", KeyPath = path, Algorithm = "rsa-sha256", Sign = false });
        Assert.Empty(options.Validate());
        var wrapped = Options.Create(options);
        var ring = new DkimKeyRing(wrapped, TimeProvider.System, NullLogger<DkimKeyRing>.Instance);
        return new ArcSealer(wrapped, ring, new FakeTimeProvider(DateTimeOffset.UtcNow));
    }

    private string WriteKey()
    {
        var path = Path.Combine(_directory.FullName, "arc1.pem");
        if (!File.Exists(path))
        {
            using var key = DkimPrivateKey.Generate(DkimAlgorithm.RsaSha256);
            File.WriteAllText(path, key.ToPem());
        }

        return path;
    }

    /// <summary>An upstream forwarder's seal (MimeKit's ArcSigner, its A-R results its own).</summary>
    private static byte[] UpstreamSeal(byte[] message, RSA key) =>
        MimeKitSigning.ArcSeal(message, key, "forwarder.test", "up", "mx.forwarder.test", "spf", "pass");

    private Task<ArcSignatureValidationResult> MimeKitArcAsync(byte[] message) => DkimVerifiers.MimeKitArcAsync(message, _dns);

    private Task<(bool Pass, string Output)> DkimpyArcAsync(byte[] message) => DkimVerifiers.DkimpyArcAsync(message, _dns);
}
