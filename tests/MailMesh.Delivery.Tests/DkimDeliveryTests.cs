using System.Text;
using MailMesh.Contracts;
using MailMesh.Delivery.Dkim;
using MailMesh.Storage;
using MailMesh.Testing.Dkim;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// DKIM in the delivery path: the destination receives the stored octets with exactly one DKIM-Signature field in
/// front, with DATA and with BDAT, inline and from the memory-mapped copy of a large message, and every retry carries
/// one fresh signature (the spool's copy is never signed). The delivered bytes verify with dkimpy, opendkim and MimeKit.
/// </summary>
public sealed class DkimDeliveryTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("mailmesh-dkim-delivery-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task The_destination_gets_the_stored_octets_behind_one_signature_that_verifies(bool chunking, bool large)
    {
        var (settings, records) = Keys(("origin.test", "s1", DkimAlgorithm.RsaSha256));
        settings["Delivery:ContentDirectory"] = Path.Combine(_directory.FullName, "attempts");
        await using var f = await DeliveryFixture.StartAsync(settings: settings);
        f.Route("dest.test", f.Sink);
        foreach (var (name, text) in records)
        {
            f.Dns.AddTxt(name, text);
        }

        if (chunking)
        {
            f.Sink.Extensions.Add("CHUNKING");
        }

        // opendkim-testmsg refuses ("Syntax error") a message without the fields RFC 5322 §3.6 requires: From and Date.
        var content = new StringBuilder("From: App <app@origin.test>\r\nTo: rcpt@dest.test\r\nSubject: signed\r\nDate: Wed, 2 Dec 2026 07:00:00 +0000\r\n\r\n");
        do
        {
            content.Append(".a line with  spaces \t and a leading dot\r\n");
        }
        while (large && content.Length <= StoredMessage.InlineContentLimit * 12);

        var bytes = Encoding.ASCII.GetBytes(content.ToString());
        var stored = f.Store(bytes);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Equal(large ? 1 : 0, f.Spool.ContentCopies);
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        var data = received.Data;

        // Exactly the stored octets, behind exactly one field that starts the message.
        var field = FirstField(data);
        Assert.StartsWith("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=origin.test; s=s1;", field, StringComparison.Ordinal);
        Assert.Equal(bytes, data[field.Length..]);
        Assert.Contains($"SIZE={data.Length}", received.MailParameters, StringComparison.Ordinal);

        var dkimpy = await DkimVerifiers.DkimpyAsync(data, f.Dns);
        Assert.True(dkimpy.Pass, dkimpy.Output);
        var opendkim = await DkimVerifiers.OpenDkimAsync(data, records);
        Assert.True(opendkim.Pass, opendkim.Output);
        Assert.True(await DkimVerifiers.MimeKitAsync(data, records));
    }

    [Fact]
    public async Task A_retry_sends_one_fresh_signature_not_two()
    {
        var (settings, records) = Keys(("origin.test", "s1", DkimAlgorithm.Ed25519Sha256));
        await using var f = await DeliveryFixture.StartAsync(settings: settings);
        f.Route("dest.test", f.Sink);
        foreach (var (name, text) in records)
        {
            f.Dns.AddTxt(name, text);
        }

        var bytes = Encoding.ASCII.GetBytes("From: app@origin.test\r\nTo: rcpt@dest.test\r\nSubject: twice\r\n\r\nbody\r\n");
        var stored = f.Store(bytes);

        // The first attempt is deferred at the end of data, the second delivered.
        f.Sink.DataReply = "451 4.3.0 try again";
        var first = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));
        Assert.Equal(DeliveryOutcome.Deferred, Assert.Single(first.Results).Outcome);
        f.Sink.DataReply = null;
        var second = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));
        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(second.Results).Outcome);

        var messages = await f.Sink.WaitForMessagesAsync(2);
        foreach (var message in messages)
        {
            var text = Encoding.ASCII.GetString(message.Data);
            Assert.Single(text.Split("\r\n"), line => line.StartsWith("DKIM-Signature:", StringComparison.OrdinalIgnoreCase));
            Assert.Equal(bytes, message.Data[FirstField(message.Data).Length..]);
            Assert.True((await DkimVerifiers.DkimpyAsync(message.Data, f.Dns)).Pass);
        }

        Assert.Equal(bytes, f.Spool.Messages[stored.Id].Content.ToArray());
    }

    [Fact]
    public async Task Mail_from_a_domain_without_a_key_goes_unsigned_byte_for_byte()
    {
        var (settings, _) = Keys(("origin.test", "s1", DkimAlgorithm.RsaSha256));
        await using var f = await DeliveryFixture.StartAsync(settings: settings);
        f.Route("dest.test", f.Sink);
        var bytes = Encoding.ASCII.GetBytes("From: someone@elsewhere.test\r\nTo: rcpt@dest.test\r\nSubject: plain\r\n\r\nbody\r\n");
        var stored = f.Store(bytes);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
        Assert.Equal(bytes, Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Data);
    }

    /// <summary>The DKIM-Signature field at the start of <paramref name="data"/>, with its folding and final CRLF.</summary>
    private static string FirstField(byte[] data)
    {
        var text = Encoding.ASCII.GetString(data);
        var end = 0;
        do
        {
            end = text.IndexOf("\r\n", end, StringComparison.Ordinal) + 2;
        }
        while (text[end] is ' ' or '\t');

        return text[..end];
    }

    private (Dictionary<string, string?> Settings, Dictionary<string, string> Records) Keys(params (string Domain, string Selector, DkimAlgorithm Algorithm)[] keys)
    {
        var settings = new Dictionary<string, string?>();
        var records = new Dictionary<string, string>();
        for (var i = 0; i < keys.Length; i++)
        {
            var (domain, selector, algorithm) = keys[i];
            var path = Path.Combine(_directory.FullName, $"{selector}.{domain}.pem");
            using var key = DkimPrivateKey.Generate(algorithm);
            File.WriteAllText(path, key.ToPem());
            settings[$"Dkim:Keys:{i}:Domain"] = domain;
            settings[$"Dkim:Keys:{i}:Selector"] = selector;
            settings[$"Dkim:Keys:{i}:KeyPath"] = path;
            settings[$"Dkim:Keys:{i}:Algorithm"] = DkimPrivateKey.Name(algorithm);
            records[$"{selector}._domainkey.{domain}"] = key.RecordText();
        }

        return (settings, records);
    }
}
