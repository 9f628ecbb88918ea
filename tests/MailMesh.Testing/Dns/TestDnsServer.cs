using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using ARSoft.Tools.Net;
using ARSoft.Tools.Net.Dns;

namespace MailMesh.Testing.Dns;

/// <summary>
/// An in-process authoritative DNS server (ARSoft.Tools.Net) on loopback, answering UDP and TCP from a mutable
/// in-memory zone. Tests add records, mark names as NXDOMAIN or SERVFAIL, delay answers past a client's timeout, and
/// count the queries that reached the server (to prove a cache hit).
/// </summary>
/// <remarks>
/// A name with no records at all answers NXDOMAIN with an SOA in the authority section (RFC 2308 §3), whose MINIMUM
/// is <see cref="NegativeTtl"/>; a name with records of other types answers NOERROR with an empty answer (NODATA,
/// RFC 2308 §2.2), also with the SOA.
/// </remarks>
public sealed class TestDnsServer : IDisposable
{
    private readonly DnsServer _server;
    private readonly ConcurrentDictionary<(DomainName Name, RecordType Type), List<DnsRecordBase>> _records = new();
    private readonly ConcurrentDictionary<DomainName, byte> _serverFailures = new();
    private readonly ConcurrentDictionary<DomainName, TimeSpan> _delays = new();
    private readonly ConcurrentDictionary<(DomainName Name, RecordType Type), int> _queries = new();
    private readonly Lock _gate = new();
    private int _totalQueries;

    private TestDnsServer(DnsServer server, IPEndPoint endPoint)
    {
        _server = server;
        EndPoint = endPoint;
        _server.QueryReceived += OnQueryReceivedAsync;
    }

    /// <summary>The UDP and TCP endpoint the server listens on.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The zone apex of the SOA placed in negative answers.</summary>
    public string Zone { get; set; } = "test.";

    /// <summary>SOA MINIMUM (and SOA TTL) in negative answers: the negative-caching TTL (RFC 2308 §5).</summary>
    public int NegativeTtl { get; set; } = 300;

    /// <summary>When true, negative answers carry no SOA (the resolver must fall back to its configured TTL).</summary>
    public bool OmitSoa { get; set; }

    /// <summary>Delay applied to every answer (in addition to per-name delays).</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>Total queries answered or delayed since start.</summary>
    public int TotalQueries => Volatile.Read(ref _totalQueries);

    /// <summary>Starts a server on 127.0.0.1 and the given port (0: a free one, the same for UDP and TCP).</summary>
    public static TestDnsServer Start(int port = 0)
    {
        // UDP and TCP must share the port. Port 0 is resolved by asking the OS for a free TCP port, then binding
        // both transports to it; a rare race with another process is retried.
        for (var attempt = 0; ; attempt++)
        {
            var chosen = port != 0 ? port : FreePort();
            var endPoint = new IPEndPoint(IPAddress.Loopback, chosen);
            var server = new DnsServer(
                new UdpServerTransport(endPoint, 2_000),
                new TcpServerTransport(endPoint, 2_000, 120_000));
            var test = new TestDnsServer(server, endPoint);
            try
            {
                server.Start();
                return test;
            }
            catch (SocketException) when (port == 0 && attempt < 5)
            {
                test.Dispose();
            }
        }
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    /// <summary>Adds an MX record. <paramref name="exchange"/> "." makes an RFC 7505 null MX.</summary>
    public TestDnsServer AddMx(string domain, int preference, string exchange, int ttl = 300) =>
        Add(new MxRecord(Name(domain), ttl, checked((ushort)preference), exchange == "." ? DomainName.Root : Name(exchange)));

    /// <summary>Adds the RFC 7505 null MX ("0 .") for the domain.</summary>
    public TestDnsServer AddNullMx(string domain, int ttl = 300) => AddMx(domain, 0, ".", ttl);

    /// <summary>Adds an A or AAAA record, depending on the address family.</summary>
    public TestDnsServer AddAddress(string name, string address, int ttl = 300)
    {
        var ip = IPAddress.Parse(address);
        return Add(ip.AddressFamily == AddressFamily.InterNetworkV6
            ? new AaaaRecord(Name(name), ttl, ip)
            : new ARecord(Name(name), ttl, ip));
    }

    /// <summary>A TXT record; text over 255 octets goes as several strings (RFC 1035 §3.3.14), as a DKIM RSA key does.</summary>
    public TestDnsServer AddTxt(string name, string text, int ttl = 300) =>
        Add(new TxtRecord(Name(name), ttl, text.Chunk(255).Select(part => new string(part)).ToList()));

    /// <summary>Removes every record of the name (it then answers NXDOMAIN).</summary>
    public TestDnsServer Remove(string name)
    {
        var domain = Name(name);
        lock (_gate)
        {
            foreach (var key in _records.Keys.Where(k => k.Name.Equals(domain)))
            {
                _records.TryRemove(key, out _);
            }
        }

        return this;
    }

    /// <summary>Answers SERVFAIL for every query about the name (or stops doing so).</summary>
    public TestDnsServer SetServerFailure(string name, bool fail = true)
    {
        if (fail)
        {
            _serverFailures[Name(name)] = 0;
        }
        else
        {
            _serverFailures.TryRemove(Name(name), out _);
        }

        return this;
    }

    /// <summary>Delays every answer about the name (use a delay longer than the client's timeout for a timeout).</summary>
    public TestDnsServer SetDelay(string name, TimeSpan delay)
    {
        _delays[Name(name)] = delay;
        return this;
    }

    /// <summary>How many queries for the name and type ("MX", "A", "AAAA", "TXT") reached the server.</summary>
    public int QueryCount(string name, string type) =>
        _queries.TryGetValue((Name(name), Enum.Parse<RecordType>(type, ignoreCase: true)), out var count) ? count : 0;

    private TestDnsServer Add(DnsRecordBase record)
    {
        lock (_gate)
        {
            _records.GetOrAdd((record.Name, record.RecordType), _ => []).Add(record);
        }

        return this;
    }

    private static DomainName Name(string name) => DomainName.Parse(name.TrimEnd('.'));

    private async Task OnQueryReceivedAsync(object sender, QueryReceivedEventArgs e)
    {
        if (e.Query is not DnsMessage query || query.Questions.Count != 1)
        {
            return;
        }

        var question = query.Questions[0];
        Interlocked.Increment(ref _totalQueries);
        _queries.AddOrUpdate((question.Name, question.RecordType), 1, (_, count) => count + 1);

        var delay = Delay + (_delays.TryGetValue(question.Name, out var perName) ? perName : TimeSpan.Zero);
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay);
        }

        var response = query.CreateResponseInstance();
        response.IsAuthoritiveAnswer = true;
        if (_serverFailures.ContainsKey(question.Name))
        {
            response.ReturnCode = ReturnCode.ServerFailure;
            e.Response = response;
            return;
        }

        bool nameExists;
        lock (_gate)
        {
            nameExists = _records.Any(pair => pair.Key.Name.Equals(question.Name) && pair.Value.Count > 0);
            if (_records.TryGetValue((question.Name, question.RecordType), out var answers))
            {
                response.AnswerRecords.AddRange(answers);
            }
        }

        response.ReturnCode = nameExists ? ReturnCode.NoError : ReturnCode.NxDomain;
        if (response.AnswerRecords.Count == 0 && !OmitSoa)
        {
            // RFC 2308 §3: negative answers carry the zone's SOA; its MINIMUM bounds the negative TTL.
            var zone = DomainName.Parse(Zone.TrimEnd('.'));
            response.AuthorityRecords.Add(new SoaRecord(
                zone, NegativeTtl, DomainName.Parse("ns." + zone), DomainName.Parse("hostmaster." + zone),
                1, 3600, 600, 86400, NegativeTtl));
        }

        e.Response = response;
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
            // ARSoft's Stop() waits for its listener tasks, which end by cancellation: that is a clean stop.
        }
    }
}
