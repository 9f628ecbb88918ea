using System.Buffers;
using System.Text;
using MailMesh.Delivery.Dkim;
using MailMesh.Testing.Dkim;
using MailMesh.Testing.Dns;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// The DKIM signer on its own: RFC 6376's canonicalisation examples, the header set and oversigning, key choice by From
/// domain, and signatures over the exact octets checked by three independent verifiers (dkimpy, opendkim-testmsg,
/// MimeKit) with the public key served from a DNS server.
/// </summary>
public sealed class DkimSignerTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("mailmesh-dkim-");

    public void Dispose() => _directory.Delete(recursive: true);

    private const string Sample =
        "Received: from client.test by mx.mailmesh.test; Tue, 1 Dec 2026 10:00:00 +0000\r\n" +
        "From: \"App\" <app@mail.example.com>\r\n" +
        "To: user@dest.test\r\n" +
        "Subject: hello\r\n" +
        "  folded subject\r\n" +
        "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n" +
        "Message-ID: <1@mail.example.com>\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "\r\n" +
        "Hello  \t world \r\n" +
        ".leading dot\r\n" +
        "\r\n" +
        "\r\n";

    [Fact]
    public void Relaxed_body_canonicalisation_is_RFC_6376_section_3_4_5()
    {
        // RFC 6376 §3.4.5: " C \r\nD \t E\r\n\r\n\r\n" becomes " C\r\nD E\r\n".
        var expected = System.Security.Cryptography.SHA256.HashData(" C\r\nD E\r\n"u8);
        Assert.Equal(expected, DkimCanonicalization.RelaxedBodyHash(" C \r\nD \t E\r\n\r\n\r\n"u8));

        // An empty body hashes as empty; a body without final CRLF gets one; whitespace-only lines at the end go.
        Assert.Equal(System.Security.Cryptography.SHA256.HashData([]), DkimCanonicalization.RelaxedBodyHash("\r\n \t\r\n"u8));
        Assert.Equal(System.Security.Cryptography.SHA256.HashData("x\r\n"u8), DkimCanonicalization.RelaxedBodyHash("x"u8));
        Assert.Equal(System.Security.Cryptography.SHA256.HashData("a\r\n\r\nb\r\n"u8), DkimCanonicalization.RelaxedBodyHash("a \r\n\t\r\nb"u8));
    }

    [Fact]
    public void Relaxed_header_canonicalisation_is_RFC_6376_section_3_4_5()
    {
        // RFC 6376 §3.4.5: "A: X\r\nB : Y\t\r\n\tZ  \r\n" becomes "a:X\r\nb:Y Z\r\n".
        var output = new ArrayBufferWriter<byte>();
        DkimCanonicalization.AppendRelaxedHeader("A: X\r\n"u8, output);
        DkimCanonicalization.AppendRelaxedHeader("B : Y\t\r\n\tZ  \r\n"u8, output);
        Assert.Equal("a:X\r\nb:Y Z\r\n", Encoding.ASCII.GetString(output.WrittenSpan));
    }

    [Fact]
    public void The_body_hash_does_not_depend_on_how_the_content_is_split()
    {
        var body = "a  b\t \r\n\r\n c\r\r\n\n \r\n\r\nend \r\n\r\n"u8.ToArray();
        var whole = DkimCanonicalization.RelaxedBodyHash(body);
        for (var split = 0; split <= body.Length; split++)
        {
            using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            var writer = new DkimCanonicalization.RelaxedBodyWriter(hash);
            writer.Write(body.AsSpan(0, split));
            writer.Write(body.AsSpan(split));
            writer.Complete();
            Assert.Equal(whole, hash.GetHashAndReset());
        }
    }

    [Theory]
    [InlineData("rsa-sha256")]
    [InlineData("ed25519-sha256")]
    public async Task A_signed_message_verifies_with_dkimpy_and_MimeKit(string algorithm)
    {
        var (signer, records) = Signer(("example.com", "s1", algorithm, true));
        using var dns = Serve(records);

        var signed = SignedBytes(signer, Encoding.ASCII.GetBytes(Sample));

        var dkimpy = await DkimVerifiers.DkimpyAsync(signed, dns);
        Assert.True(dkimpy.Pass, dkimpy.Output);
        Assert.Contains("b'example.com' b's1' " + algorithm, dkimpy.Output, StringComparison.Ordinal);
        Assert.True(await DkimVerifiers.MimeKitAsync(signed, records));
    }

    [Fact]
    public async Task An_RSA_signature_verifies_with_opendkim()
    {
        // OpenDKIM 2.11 has no Ed25519 (RFC 8463): the Ed25519 signatures are checked by dkimpy and MimeKit only.
        var (signer, records) = Signer(("example.com", "s1", "rsa-sha256", true));
        var signed = SignedBytes(signer, Encoding.ASCII.GetBytes(Sample));
        var opendkim = await DkimVerifiers.OpenDkimAsync(signed, records);
        Assert.True(opendkim.Pass, opendkim.Output);

        // And a changed body fails there too: the tools are really checking.
        var tampered = Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(signed).Replace("leading dot", "leading dog", StringComparison.Ordinal));
        Assert.False((await DkimVerifiers.OpenDkimAsync(tampered, records)).Pass);
    }

    [Fact]
    public async Task A_3_MiB_message_is_signed_from_its_octets_and_verifies()
    {
        var (signer, records) = Signer(("example.com", "big", "rsa-sha256", true));
        using var dns = Serve(records);
        var body = new StringBuilder();
        for (var i = 0; body.Length < 3 * 1024 * 1024; i++)
        {
            body.Append("line ").Append(i).Append(" \t of   some text with  trailing space  \r\n");
        }

        var signed = SignedBytes(signer, Encoding.ASCII.GetBytes(Sample + body));
        Assert.True((await DkimVerifiers.DkimpyAsync(signed, dns)).Pass);
        Assert.True((await DkimVerifiers.OpenDkimAsync(signed, records)).Pass);
        Assert.True(await DkimVerifiers.MimeKitAsync(signed, records));
    }

    [Fact]
    public void From_To_and_Subject_are_oversigned_and_trace_fields_are_not_signed()
    {
        var (signer, _) = Signer(("example.com", "s1", "rsa-sha256", true));
        var field = Encoding.ASCII.GetString(signer.Sign(Encoding.ASCII.GetBytes(Sample)).Field.Span);
        var h = Tag(field, "h");
        Assert.Equal(
            "from:from:to:to:subject:subject:date:message-id:mime-version:content-type",
            h);
        Assert.Equal("relaxed/relaxed", Tag(field, "c"));
        Assert.Equal("example.com", Tag(field, "d"));
        Assert.DoesNotContain("received", h, StringComparison.Ordinal);
        Assert.All(field.Split("\r\n"), line => Assert.True(line.Length <= 78, line));
    }

    [Fact]
    public void The_key_of_the_From_domain_or_its_nearest_parent_signs_and_the_last_listed_of_a_domain_wins()
    {
        var (signer, _) = Signer(
            ("example.com", "old", "rsa-sha256", true),
            ("example.com", "new", "ed25519-sha256", true),
            ("mail.example.com", "sub", "rsa-sha256", false),
            ("other.test", "o", "rsa-sha256", true));

        // mail.example.com's own key does not sign (Sign=false), so its parent's newest does.
        var result = signer.Sign(Encoding.ASCII.GetBytes(Sample));
        Assert.Equal(("example.com", "new"), (result.Domain, result.Selector));

        // No key for the From domain: nothing is signed, nothing is sent in front.
        var foreign = signer.Sign(Encoding.ASCII.GetBytes(Sample.Replace("mail.example.com>", "example.net>", StringComparison.Ordinal)));
        Assert.False(foreign.IsSigned);
        Assert.Equal("no_key", foreign.Outcome);

        // A look-alike domain is not a sub-domain.
        Assert.False(signer.Sign(Encoding.ASCII.GetBytes(Sample.Replace("mail.example.com>", "badexample.com>", StringComparison.Ordinal))).IsSigned);
    }

    [Fact]
    public void A_message_already_signed_with_the_same_domain_and_selector_is_not_signed_again()
    {
        var (signer, _) = Signer(("example.com", "s1", "rsa-sha256", true));
        var once = SignedBytes(signer, Encoding.ASCII.GetBytes(Sample));
        var again = signer.Sign(once);
        Assert.Equal("already_signed", again.Outcome);
    }

    [Theory]
    [InlineData("From: a@example.com\r\nFrom: b@example.com\r\n\r\nx\r\n", "no_from_domain")]
    [InlineData("From: a@example.com, b@other.test\r\n\r\nx\r\n", "no_from_domain")]
    [InlineData("Subject: no from\r\n\r\nx\r\n", "no_from_domain")]
    [InlineData(" folded first\r\nFrom: a@example.com\r\n\r\nx\r\n", "unparsable_header")]
    public void Ambiguous_or_missing_From_is_not_signed(string message, string outcome)
    {
        var (signer, _) = Signer(("example.com", "s1", "rsa-sha256", true));
        Assert.Equal(outcome, signer.Sign(Encoding.ASCII.GetBytes(message)).Outcome);
    }

    [Fact]
    public void Bad_keys_are_refused_at_start_naming_the_key()
    {
        var rsa = WriteKey("rsa.pem", DkimAlgorithm.RsaSha256);
        var garbage = Path.Combine(_directory.FullName, "garbage.pem");
        File.WriteAllText(garbage, "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
        var options = new DkimOptions
        {
            Keys =
            [
                new() { Domain = "example.com", Selector = "a", KeyPath = Path.Combine(_directory.FullName, "missing.pem") },
                new() { Domain = "example.com", Selector = "b", KeyPath = garbage },
                new() { Domain = "example.com", Selector = "c", KeyPath = rsa, Algorithm = "ed25519-sha256" },
                new() { Domain = "example.com", Selector = "C", KeyPath = rsa },
                new() { Domain = "bad domain", Selector = "d", KeyPath = rsa },
                new() { Domain = "example.com", Selector = "e", KeyPath = rsa, Algorithm = "rsa-sha1" },
            ],
        };
        var failures = options.Validate().ToList();
        Assert.Contains(failures, f => f.StartsWith("Dkim:Keys:0:KeyPath: cannot load", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Dkim:Keys:1:KeyPath: cannot load", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Dkim:Keys:2:KeyPath:", StringComparison.Ordinal) && f.Contains("cannot sign ed25519-sha256", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Dkim:Keys:3:Selector:", StringComparison.Ordinal) && f.Contains("Dkim:Keys:2", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Dkim:Keys:4:Domain:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Dkim:Keys:5:Algorithm:", StringComparison.Ordinal));
    }

    [Fact]
    public void A_replaced_key_file_is_read_again_after_the_check_interval()
    {
        var path = WriteKey("rotating.pem", DkimAlgorithm.RsaSha256);
        var time = new FakeTimeProvider();
        var ring = new DkimKeyRing(
            Options.Create(new DkimOptions { Keys = [new() { Domain = "example.com", Selector = "s", KeyPath = path }] }),
            time, NullLogger<DkimKeyRing>.Instance);
        var key = ring.For("example.com")!;
        var before = key.Current.PublicKeyBase64();

        using (var replacement = DkimPrivateKey.Generate(DkimAlgorithm.RsaSha256))
        {
            File.WriteAllText(path, replacement.ToPem());
        }

        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        Assert.Equal(before, key.Current.PublicKeyBase64());
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.NotEqual(before, key.Current.PublicKeyBase64());

        // A half-written file keeps the last good key signing.
        var current = key.Current.PublicKeyBase64();
        File.WriteAllText(path, "-----BEGIN PRIVATE KEY-----\n");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(2));
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.Equal(current, key.Current.PublicKeyBase64());
    }

    [Fact]
    public async Task The_record_commands_print_the_zone_line_split_into_255_octet_strings()
    {
        // In a directory that does not exist yet, as docs/authentication.md's `dkim-keygen --out keys/s2026.pem`.
        var path = Path.Combine(_directory.FullName, "keys", "generated.pem");
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(0, await DkimCommands.TryRunAsync(["dkim-keygen", "--algorithm", "rsa-sha256", "--out", path], output, error));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(path)!));
        }

        using var record = new StringWriter();
        Assert.Equal(0, await DkimCommands.TryRunAsync(["dkim-record", "--key", path, "--selector", "s2026", "--domain", "example.com"], record, error));
        var text = record.ToString();
        Assert.StartsWith("s2026._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=", text, StringComparison.Ordinal);
        var strings = text.Split('"').Where((_, i) => i % 2 == 1).ToList();
        Assert.Equal(2, strings.Count);
        Assert.All(strings, s => Assert.True(s.Length <= 255));

        using var configured = new StringWriter();
        Assert.Equal(0, await DkimCommands.TryRunAsync(
            ["dkim-records", "--Dkim:Keys:0:Domain=example.com", "--Dkim:Keys:0:Selector=s2026", $"--Dkim:Keys:0:KeyPath={path}"], configured, error));
        Assert.Contains(text.Trim(), configured.ToString(), StringComparison.Ordinal);
        Assert.Null(await DkimCommands.TryRunAsync(["--Urls=http://127.0.0.1:0"], output, error));
    }

    private static byte[] SignedBytes(MessageSigner signer, byte[] content)
    {
        var result = signer.Sign(content);
        Assert.True(result.IsSigned, result.Outcome);
        return [.. result.Field.ToArray(), .. content];
    }

    private static string Tag(string field, string name)
    {
        var value = field[(field.IndexOf(':', StringComparison.Ordinal) + 1)..];
        foreach (var tag in value.Split(';'))
        {
            var parts = tag.Split('=', 2);
            if (parts[0].Trim() == name)
            {
                return string.Concat(parts[1].Where(c => !char.IsWhiteSpace(c)));
            }
        }

        throw new KeyNotFoundException(name);
    }

    private static TestDnsServer Serve(IReadOnlyDictionary<string, string> records)
    {
        var dns = TestDnsServer.Start();
        foreach (var (name, text) in records)
        {
            dns.AddTxt(name, text);
        }

        return dns;
    }

    private string WriteKey(string name, DkimAlgorithm algorithm)
    {
        var path = Path.Combine(_directory.FullName, name);
        using var key = DkimPrivateKey.Generate(algorithm);
        File.WriteAllText(path, key.ToPem());
        return path;
    }

    private (MessageSigner Signer, Dictionary<string, string> Records) Signer(params (string Domain, string Selector, string Algorithm, bool Sign)[] keys)
    {
        var options = new DkimOptions();
        var records = new Dictionary<string, string>();
        foreach (var (domain, selector, algorithm, sign) in keys)
        {
            Assert.True(DkimPrivateKey.TryParseAlgorithm(algorithm, out var parsed));
            var path = WriteKey($"{selector}.{domain}.pem", parsed);
            using var key = DkimPrivateKey.FromPem(File.ReadAllText(path));
            records[$"{selector}._domainkey.{domain}"] = key.RecordText();
            options.Keys.Add(new DkimKeyOptions { Domain = domain, Selector = selector, KeyPath = path, Algorithm = algorithm, Sign = sign });
        }

        Assert.Empty(options.Validate());
        var ring = new DkimKeyRing(Options.Create(options), TimeProvider.System, NullLogger<DkimKeyRing>.Instance);
        return (new MessageSigner(ring, new FakeTimeProvider(DateTimeOffset.UtcNow)), records);
    }
}
