using System.Text;
using MailMesh.Contracts;
using MailMesh.Delivery.Dkim;
using MailMesh.Testing.Dkim;
using MimeKit.Cryptography;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// ARC sealing in the delivery path: a forwarded message (our Authentication-Results on it) reaches the destination
/// with an ARC set and the DKIM-Signature in front of the stored octets, both verifying; a local submission gets the
/// DKIM signature only; with sealing disabled a forwarded message is sent as before.
/// </summary>
public sealed class ArcDeliveryTests : IDisposable
{
    private const string Forwarded =
        "Authentication-Results: mx.mailmesh.test; spf=pass smtp.mailfrom=origin.test; arc=none\r\n" +
        "From: App <app@origin.test>\r\nTo: rcpt@dest.test\r\nSubject: forwarded\r\nDate: Wed, 2 Dec 2026 07:00:00 +0000\r\n\r\nbody  line \r\n";

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("mailmesh-arc-delivery-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task A_forwarded_message_is_sent_with_a_verifying_ARC_set_and_DKIM_signature()
    {
        await using var f = await StartAsync(enabled: true);
        var bytes = Encoding.ASCII.GetBytes(Forwarded);
        var data = await DeliverAsync(f, bytes);

        var text = Encoding.ASCII.GetString(data);
        Assert.StartsWith("ARC-Seal: i=1; a=rsa-sha256;", text, StringComparison.Ordinal);
        Assert.Contains("\r\nARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=mailmesh.test; s=arc1;", text, StringComparison.Ordinal);
        Assert.Contains("\r\nARC-Authentication-Results: i=1; mx.mailmesh.test; spf=pass", text, StringComparison.Ordinal);
        var dkim = text.IndexOf("\r\nDKIM-Signature: v=1;", StringComparison.Ordinal);
        Assert.True(dkim > text.IndexOf("\r\nARC-Authentication-Results:", StringComparison.Ordinal), "the ARC set is above the DKIM-Signature");
        Assert.EndsWith(Forwarded, text, StringComparison.Ordinal);

        Assert.Equal(ArcSignatureValidationResult.Pass, await DkimVerifiers.MimeKitArcAsync(data, f.Dns));
        var arc = await DkimVerifiers.DkimpyArcAsync(data, f.Dns);
        Assert.True(arc.Pass, arc.Output);
        var dkimpy = await DkimVerifiers.DkimpyAsync(data, f.Dns);
        Assert.True(dkimpy.Pass, dkimpy.Output);
    }

    [Fact]
    public async Task A_local_submission_is_signed_but_not_sealed()
    {
        await using var f = await StartAsync(enabled: true);
        var bytes = Encoding.ASCII.GetBytes("From: App <app@origin.test>\r\nTo: rcpt@dest.test\r\nSubject: local\r\n\r\nbody\r\n");
        var text = Encoding.ASCII.GetString(await DeliverAsync(f, bytes));
        Assert.StartsWith("DKIM-Signature: v=1;", text, StringComparison.Ordinal);
        Assert.DoesNotContain("ARC-", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disabled_sealing_leaves_a_forwarded_message_as_it_was()
    {
        await using var f = await StartAsync(enabled: false);
        var text = Encoding.ASCII.GetString(await DeliverAsync(f, Encoding.ASCII.GetBytes(Forwarded)));
        Assert.StartsWith("DKIM-Signature: v=1;", text, StringComparison.Ordinal);
        Assert.DoesNotContain("ARC-", text, StringComparison.Ordinal);
        Assert.EndsWith(Forwarded, text, StringComparison.Ordinal);
    }

    private async Task<DeliveryFixture> StartAsync(bool enabled)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Dkim:Arc:Enabled"] = enabled ? "true" : "false",
            ["Dkim:Arc:Domain"] = "mailmesh.test",
            ["Dkim:Arc:Selector"] = "arc1",

            // Dkim:Arc:AuthServId unset: Policy's setting of the same configuration is used.
            ["Policy:AuthServId"] = "mx.mailmesh.test",
        };
        var records = new Dictionary<string, string>();
        var keys = new[] { ("origin.test", "s1", true), ("mailmesh.test", "arc1", false) };
        for (var i = 0; i < keys.Length; i++)
        {
            var (domain, selector, sign) = keys[i];
            var path = Path.Combine(_directory.FullName, $"{selector}.{domain}.pem");
            using var key = DkimPrivateKey.Generate(DkimAlgorithm.RsaSha256);
            File.WriteAllText(path, key.ToPem());
            settings[$"Dkim:Keys:{i}:Domain"] = domain;
            settings[$"Dkim:Keys:{i}:Selector"] = selector;
            settings[$"Dkim:Keys:{i}:KeyPath"] = path;
            settings[$"Dkim:Keys:{i}:Sign"] = sign ? "true" : "false";
            records[$"{selector}._domainkey.{domain}"] = key.RecordText();
        }

        var f = await DeliveryFixture.StartAsync(settings: settings);
        f.Route("dest.test", f.Sink);
        foreach (var (name, text) in records)
        {
            f.Dns.AddTxt(name, text);
        }

        return f;
    }

    private static async Task<byte[]> DeliverAsync(DeliveryFixture f, byte[] bytes)
    {
        var stored = f.Store(bytes);
        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));
        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        return Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Data;
    }
}
