using System.Diagnostics;
using DnsClient;
using MailMesh.Testing.Dns;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace MailMesh.Testing.Dkim;

/// <summary>
/// Independent DKIM verifiers for signed messages as they were delivered: Python's dkimpy (Debian python3-dkim, with
/// python3-nacl for Ed25519), OpenDKIM's opendkim-testmsg (Debian opendkim-tools; no Ed25519) and MimeKit's
/// DkimVerifier. Each looks the public key up in the DNS: dkimpy and MimeKit ask a <see cref="TestDnsServer"/>;
/// opendkim-testmsg uses the C library's resolver, which reads /etc/resolv.conf only, so it runs in a private mount
/// namespace (unshare) with a resolv.conf naming a test DNS server on 127.0.0.1:53.
/// </summary>
public static class DkimVerifiers
{
    /// <summary>Debian's interpreter: the one python3-dkim and python3-nacl are installed for (not a pyenv shim).</summary>
    public const string Python = "/usr/bin/python3";

    /// <summary>dkimpy with its key lookups sent to the DNS server given as argv[2] and argv[3] (address, port).</summary>
    private const string DkimpyWithTestDns = """
        import sys, dkim, dns.resolver, dns.rdatatype
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [sys.argv[2]]
        resolver.port = int(sys.argv[3])
        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            answer = resolver.resolve(name, 'TXT', raise_on_no_answer=False, lifetime=timeout)
            for rrset in answer.response.answer:
                if rrset.rdtype == dns.rdatatype.TXT:
                    return b''.join(list(rrset.items)[0].strings)
            return None

        """;

    private const string DkimpyScript = DkimpyWithTestDns + """
        message = open(sys.argv[1], 'rb').read()
        verifier = dkim.DKIM(message)
        ok = verifier.verify(dnsfunc=dnsfunc)
        print('dkimpy:', 'pass' if ok else 'fail', verifier.domain, verifier.selector, verifier.signature_fields.get(b'a', b'').decode() if hasattr(verifier, 'signature_fields') else '')
        sys.exit(0 if ok else 1)
        """;

    private const string DkimpyArcScript = DkimpyWithTestDns + """
        cv, results, comment = dkim.arc_verify(open(sys.argv[1], 'rb').read(), dnsfunc=dnsfunc)
        # None: the newest ARC-Message-Signature verified and its seal says cv=fail (RFC 8617 §5.2 step 2: fail).
        print('arc:', cv.decode() if cv is not None else 'fail', comment)
        sys.exit(0 if cv == b'pass' else 1)
        """;

    /// <summary>dkimpy's verdict on the first DKIM-Signature of <paramref name="message"/>, keys from <paramref name="dns"/>.</summary>
    public static Task<(bool Pass, string Output)> DkimpyAsync(byte[] message, TestDnsServer dns) => RunDkimpyAsync(DkimpyScript, message, dns);

    /// <summary>dkimpy's arc_verify of <paramref name="message"/>: passes when the chain's cv is pass; keys from <paramref name="dns"/>.
    /// The output is "arc: &lt;cv&gt; &lt;dkimpy's comment&gt;".</summary>
    public static Task<(bool Pass, string Output)> DkimpyArcAsync(byte[] message, TestDnsServer dns) => RunDkimpyAsync(DkimpyArcScript, message, dns);

    private static async Task<(bool Pass, string Output)> RunDkimpyAsync(string script, byte[] message, TestDnsServer dns)
    {
        ArgumentNullException.ThrowIfNull(dns);
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(file, message);
            var (exit, output) = await RunAsync(Python, ["-c", script, file, dns.EndPoint.Address.ToString(), dns.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)], null);
            return (exit == 0, output);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// opendkim-testmsg's verdict (exit 0 and no output means every signature verified; a message without the Date or
    /// From field RFC 5322 requires is refused as a "Syntax error" before any signature is looked at). Its resolver is pointed at a
    /// DNS server on 127.0.0.1:53 holding <paramref name="records"/> (name → TXT text); one run at a time per machine.
    /// </summary>
    public static async Task<(bool Pass, string Output)> OpenDkimAsync(byte[] message, IReadOnlyDictionary<string, string> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        await using var port53 = await AcquirePort53Async();
        using var dns = TestDnsServer.Start(53);
        foreach (var (name, text) in records)
        {
            dns.AddTxt(name, text);
        }

        var directory = Directory.CreateTempSubdirectory("mailmesh-opendkim-");
        try
        {
            var resolv = Path.Combine(directory.FullName, "resolv.conf");
            await File.WriteAllTextAsync(resolv, "nameserver 127.0.0.1\noptions attempts:1 timeout:2\n");
            var script = $"mount --bind '{resolv}' /etc/resolv.conf && exec opendkim-testmsg -t '{directory.FullName}'";
            var (exit, output) = await RunAsync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], message);
            return (exit == 0 && output.Length == 0, $"opendkim-testmsg exit {exit}: {output}");
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    /// <summary>MimeKit's DkimVerifier on the first DKIM-Signature, the key from <paramref name="records"/> (name → TXT text).</summary>
    public static async Task<bool> MimeKitAsync(byte[] message, IReadOnlyDictionary<string, string> records)
    {
        using var stream = new MemoryStream(message);
        var parsed = await MimeMessage.LoadAsync(stream);
        var index = parsed.Headers.IndexOf(HeaderId.DkimSignature);
        if (index < 0)
        {
            return false;
        }

        var verifier = new DkimVerifier(new RecordLocator(records)) { MinimumRsaKeyLength = 1024 };
        verifier.Enable(DkimSignatureAlgorithm.Ed25519Sha256);
        return await verifier.VerifyAsync(parsed, parsed.Headers[index]);
    }

    /// <summary>MimeKit's ArcVerifier's chain verdict (RFC 8617 §5.2) on <paramref name="message"/>, keys from <paramref name="dns"/>.</summary>
    public static async Task<ArcSignatureValidationResult> MimeKitArcAsync(byte[] message, TestDnsServer dns)
    {
        using var stream = new MemoryStream(message);
        var parsed = await MimeMessage.LoadAsync(stream);
        var verifier = new ArcVerifier(new DnsLocator(dns)) { MinimumRsaKeyLength = 1024 };
        return (await verifier.VerifyAsync(parsed)).Chain;
    }

    /// <summary>A machine-wide lock (an exclusively opened file) for DNS on 127.0.0.1:53.</summary>
    private static async Task<FileStream> AcquirePort53Async()
    {
        var path = Path.Combine(Path.GetTempPath(), "mailmesh-test-dns53.lock");
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    /// <summary>Runs <paramref name="program"/> with <paramref name="input"/> on its standard input; its exit code and its
    /// standard output followed by its standard error.</summary>
    internal static async Task<(int ExitCode, string Output)> RunAsync(string program, IEnumerable<string> arguments, byte[]? input)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start " + program);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            await process.StandardInput.BaseStream.WriteAsync(input);
        }

        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, (await stdout + await stderr).Trim());
    }

    private sealed class RecordLocator(IReadOnlyDictionary<string, string> records) : DkimPublicKeyLocatorBase
    {
        public override AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            GetPublicKey(records[selector + "._domainkey." + domain]);

        public override Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            Task.FromResult(LocatePublicKey(methods, domain, selector, cancellationToken));
    }

    /// <summary>Public keys from the test DNS server (TXT at selector._domainkey.domain), asked with DnsClient.</summary>
    private sealed class DnsLocator(TestDnsServer dns) : DkimPublicKeyLocatorBase
    {
        private readonly LookupClient _client = new(new LookupClientOptions(new NameServer(dns.EndPoint)) { UseCache = false });

        public override AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

        public override async Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
        {
            var answer = await _client.QueryAsync(selector + "._domainkey." + domain, QueryType.TXT, cancellationToken: cancellationToken);
            var record = answer.Answers.TxtRecords().First();
            return GetPublicKey(string.Concat(record.Text));
        }
    }
}
