using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ARSoft.Tools.Net;
using ARSoft.Tools.Net.Dns;

namespace MailMesh.Testing.Dns;

/// <summary>
/// A DNSSEC-signed zone for DANE tests: the zone file is signed by <c>ldns-signzone</c> with a fresh ECDSA P-256 key
/// (<c>ldns-keygen</c>, Debian's ldnsutils) and served by an in-process authoritative server (ARSoft.Tools.Net) on
/// loopback that answers with the RRSIGs and, for names or types that do not exist, the NSEC records proving it
/// (RFC 4035 §3.1). <see cref="TrustAnchorPath"/> is the key's DS record, for a validating resolver's trust anchor.
/// </summary>
public sealed class SignedZone : IDisposable
{
    private readonly DnsServer _server;
    private readonly List<DnsRecordBase> _records;
    private readonly DomainName _apex;

    private SignedZone(DnsServer server, IPEndPoint endPoint, DomainName apex, List<DnsRecordBase> records, string directory, string trustAnchor)
    {
        _server = server;
        EndPoint = endPoint;
        _apex = apex;
        _records = records;
        Directory = directory;
        TrustAnchorPath = trustAnchor;
        _server.QueryReceived += OnQueryReceivedAsync;
    }

    /// <summary>The authoritative server's UDP and TCP endpoint.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The zone's name without the trailing dot.</summary>
    public string Name => _apex.ToString().TrimEnd('.');

    /// <summary>The working directory (zone files, key, DS).</summary>
    public string Directory { get; }

    /// <summary>The DS record of the signing key (a file unbound takes as trust-anchor-file).</summary>
    public string TrustAnchorPath { get; }

    /// <summary>
    /// Signs and serves <paramref name="zone"/> with <paramref name="records"/> (zone file lines, names relative to the
    /// apex or absolute). The SOA and NS are added.
    /// </summary>
    public static async Task<SignedZone> StartAsync(string zone, IEnumerable<string> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var directory = Path.Combine(Path.GetTempPath(), $"mailmesh-zone-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(directory);
        var text = new StringBuilder()
            .Append("$ORIGIN ").Append(zone).Append(".\n$TTL 300\n")
            .Append("@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A 127.0.0.1\n");
        foreach (var record in records)
        {
            text.Append(record).Append('\n');
        }

        await File.WriteAllTextAsync(Path.Combine(directory, "zone"), text.ToString());
        var key = (await RunAsync(directory, "ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone)).Trim();
        await RunAsync(directory, "ldns-signzone", "zone", key);

        var apex = DomainName.Parse(zone);
        var signed = Zone.ParseMasterFile(apex, Path.Combine(directory, "zone.signed"));
        var list = signed.ToList();
        for (var attempt = 0; ; attempt++)
        {
            var port = Infrastructure.LoopbackPort.Free();
            var endPoint = new IPEndPoint(IPAddress.Loopback, port);
            var server = new DnsServer(new UdpServerTransport(endPoint, 2_000), new TcpServerTransport(endPoint, 2_000, 120_000));
            var result = new SignedZone(server, endPoint, apex, list, directory, Path.Combine(directory, key + ".ds"));
            try
            {
                server.Start();
                return result;
            }
            catch (SocketException) when (attempt < 5)
            {
                result.Dispose();
            }
        }
    }

    private static async Task<string> RunAsync(string directory, string tool, params string[] arguments)
    {
        var start = new ProcessStartInfo(tool)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException(
                $"{tool} is not installed: the DANE tests need Debian's ldnsutils and unbound (deploy/scripts/deps.sh with MAILMESH_TEST_TOOLS=1)", ex);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"{tool} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await error}");
            }

            return await output;
        }
    }

    private Task OnQueryReceivedAsync(object sender, QueryReceivedEventArgs e)
    {
        if (e.Query is not DnsMessage query || query.Questions.Count != 1)
        {
            return Task.CompletedTask;
        }

        var question = query.Questions[0];
        var response = query.CreateResponseInstance();
        e.Response = response;
        if (!question.Name.IsEqualOrSubDomainOf(_apex))
        {
            response.ReturnCode = ReturnCode.Refused;
            return Task.CompletedTask;
        }

        response.IsAuthoritiveAnswer = true;
        var atName = _records.Where(r => r.Name.Equals(question.Name)).ToList();
        var answers = atName.Where(r => r.RecordType == question.RecordType).ToList();
        if (answers.Count > 0)
        {
            response.AnswerRecords.AddRange(answers);
            response.AnswerRecords.AddRange(Signatures(question.Name, question.RecordType));
            return Task.CompletedTask;
        }

        // Negative answers (RFC 4035 §3.1.3): the SOA with its signature, and the NSEC records that prove the denial.
        var soa = _records.First(r => r.RecordType == RecordType.Soa);
        response.AuthorityRecords.Add(soa);
        response.AuthorityRecords.AddRange(Signatures(_apex, RecordType.Soa));
        var nsecs = _records.OfType<NSecRecord>().ToList();
        var emptyNonTerminal = _records.Any(r => r.Name.IsSubDomainOf(question.Name));
        if (atName.Count > 0)
        {
            // NODATA: the name's own NSEC shows the type is absent.
            AddNsec(response, nsecs.First(n => n.Name.Equals(question.Name)));
            response.ReturnCode = ReturnCode.NoError;
        }
        else if (emptyNonTerminal)
        {
            AddNsec(response, Covering(nsecs, question.Name));
            response.ReturnCode = ReturnCode.NoError;
        }
        else
        {
            // NXDOMAIN: an NSEC covering the name and one covering the wildcard at the closest encloser.
            var encloser = question.Name.GetParentName();
            while (!encloser.Equals(_apex) && !_records.Any(r => r.Name.IsEqualOrSubDomainOf(encloser)))
            {
                encloser = encloser.GetParentName();
            }

            var covering = Covering(nsecs, question.Name);
            AddNsec(response, covering);
            var wildcard = Covering(nsecs, DomainName.Parse("*." + encloser));
            if (!ReferenceEquals(wildcard, covering))
            {
                AddNsec(response, wildcard);
            }

            response.ReturnCode = ReturnCode.NxDomain;
        }

        return Task.CompletedTask;
    }

    private void AddNsec(DnsMessage response, NSecRecord nsec)
    {
        response.AuthorityRecords.Add(nsec);
        response.AuthorityRecords.AddRange(Signatures(nsec.Name, RecordType.NSec));
    }

    private IEnumerable<DnsRecordBase> Signatures(DomainName name, RecordType type) =>
        _records.OfType<RrSigRecord>().Where(s => s.Name.Equals(name) && s.TypeCovered == type);

    /// <summary>The NSEC whose owner sorts before <paramref name="name"/> and whose next name after it (RFC 4034 §6.1 order).</summary>
    private NSecRecord Covering(List<NSecRecord> nsecs, DomainName name)
    {
        foreach (var nsec in nsecs)
        {
            var afterOwner = Canonical(nsec.Name, name) < 0;
            var beforeNext = Canonical(name, nsec.NextDomainName) < 0 || nsec.NextDomainName.Equals(_apex);
            if (afterOwner && beforeNext)
            {
                return nsec;
            }
        }

        return nsecs[^1];
    }

    /// <summary>RFC 4034 §6.1: labels compared right to left, each as lower-cased octets.</summary>
    private static int Canonical(DomainName a, DomainName b)
    {
        var left = a.Labels;
        var right = b.Labels;
        for (int i = left.Length - 1, j = right.Length - 1; i >= 0 && j >= 0; i--, j--)
        {
            var compared = string.CompareOrdinal(left[i].ToLowerInvariant(), right[j].ToLowerInvariant());
            if (compared != 0)
            {
                return compared;
            }
        }

        return left.Length.CompareTo(right.Length);
    }

    public void Dispose()
    {
        _server.QueryReceived -= OnQueryReceivedAsync;
        try
        {
            _server.Stop();
        }
        catch (AggregateException ex) when (ex.InnerExceptions.All(e => e is OperationCanceledException))
        {
            // ARSoft's Stop() waits for its listener tasks, which end by cancellation: a clean stop.
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }
}
