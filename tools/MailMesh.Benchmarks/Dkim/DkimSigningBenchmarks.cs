using System.Text;
using BenchmarkDotNet.Attributes;
using MailMesh.Delivery.Dkim;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MailMesh.Benchmarks.Dkim;

/// <summary>
/// What DKIM signing costs Delivery per attempt (<see cref="MessageSigner.Sign(ReadOnlySpan{byte})"/>: header split,
/// key choice, relaxed body hash over the stored octets, header hash, signature): RSA 2048 against Ed25519, for a
/// 10 KB message (the signature dominates) and a 1 MB one (the body hash dominates).
/// </summary>
[MemoryDiagnoser]
public class DkimSigningBenchmarks
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("mailmesh-bench-dkim-");
    private MessageSigner _signer = null!;
    private byte[] _message = [];

    [Params("rsa-sha256", "ed25519-sha256")]
    public string Algorithm { get; set; } = "rsa-sha256";

    [Params(10 * 1024, 1024 * 1024)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!DkimPrivateKey.TryParseAlgorithm(Algorithm, out var algorithm))
        {
            throw new InvalidOperationException("unknown algorithm " + Algorithm);
        }

        var path = Path.Combine(_directory.FullName, "key.pem");
        using (var key = DkimPrivateKey.Generate(algorithm))
        {
            File.WriteAllText(path, key.ToPem());
        }

        var options = new DkimOptions { Keys = [new DkimKeyOptions { Domain = "example.org", Selector = "s1", KeyPath = path, Algorithm = Algorithm }] };
        _signer = new MessageSigner(new DkimKeyRing(Options.Create(options), TimeProvider.System, NullLogger<DkimKeyRing>.Instance), TimeProvider.System);

        var text = new StringBuilder(
            "Received: from app.example.org by mx.example.org; Wed, 2 Dec 2026 07:00:00 +0000\r\n" +
            "From: App <app@example.org>\r\nTo: user@example.com\r\nSubject: benchmark\r\nDate: Wed, 2 Dec 2026 07:00:00 +0000\r\n" +
            "Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
        while (text.Length < Size)
        {
            text.Append("Some words  of a\ttransactional message, with spaces at the end  ").Append("\r\n");
        }

        _message = Encoding.ASCII.GetBytes(text.ToString());
    }

    [GlobalCleanup]
    public void Cleanup() => _directory.Delete(recursive: true);

    [Benchmark]
    public int Sign() => _signer.Sign(_message).Field.Length;
}
