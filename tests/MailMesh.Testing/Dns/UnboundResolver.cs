using System.Diagnostics;
using System.Net;
using System.Text;
using DnsClient;

namespace MailMesh.Testing.Dns;

/// <summary>
/// Debian's <c>unbound</c> as a DNSSEC-validating resolver on a free loopback port, trusting exactly one
/// <see cref="SignedZone"/> (its DS as the trust anchor, the zone reached as a stub zone). Answers from that zone
/// come with the AD bit; a zone whose signatures do not validate is answered SERVFAIL.
/// </summary>
public sealed class UnboundResolver : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private UnboundResolver(Process process, IPEndPoint endPoint)
    {
        _process = process;
        EndPoint = endPoint;
    }

    /// <summary>Where unbound answers (UDP and TCP).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>What unbound wrote so far (for failure messages).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static async Task<UnboundResolver> StartAsync(SignedZone zone)
    {
        ArgumentNullException.ThrowIfNull(zone);
        var port = Infrastructure.LoopbackPort.Free();
        var config = Path.Combine(zone.Directory, "unbound.conf");
        await File.WriteAllTextAsync(config, $"""
            server:
              interface: 127.0.0.1
              port: {port}
              do-ip6: no
              do-not-query-localhost: no
              username: ""
              chroot: ""
              directory: "{zone.Directory}"
              pidfile: ""
              use-syslog: no
              logfile: ""
              verbosity: 1
              num-threads: 1
              so-reuseport: no
              module-config: "validator iterator"
              trust-anchor-file: "{zone.TrustAnchorPath}"
              qname-minimisation: no
              aggressive-nsec: no
              val-log-level: 2
              access-control: 127.0.0.0/8 allow
              # unbound answers NXDOMAIN for the RFC 6761 special-use names (test., invalid., ...) unless told not to.
              local-zone: "test." nodefault
              local-zone: "invalid." nodefault
            remote-control:
              control-enable: no
            stub-zone:
              name: "{zone.Name}"
              stub-addr: 127.0.0.1@{zone.EndPoint.Port}
              stub-prime: no
            """);

        var start = new ProcessStartInfo("unbound")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-d");
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(config);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("unbound did not start");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("unbound is not installed (deploy/scripts/deps.sh with MAILMESH_TEST_TOOLS=1 installs it)", ex);
        }

        var resolver = new UnboundResolver(process, new IPEndPoint(IPAddress.Loopback, port));
        process.OutputDataReceived += (_, e) => resolver.Append(e.Data);
        process.ErrorDataReceived += (_, e) => resolver.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        // Ready when the zone's SOA comes back validated.
        var client = new LookupClient(new LookupClientOptions(resolver.EndPoint)
        {
            UseCache = false,
            Timeout = TimeSpan.FromSeconds(1),
            Retries = 0,
            RequestDnsSecRecords = true,
            ThrowDnsErrors = false,
        });
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var last = "no answer";
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"unbound exited with {process.ExitCode}: {resolver.Log}");
            }

            try
            {
                var answer = await client.QueryAsync(zone.Name, QueryType.SOA);
                if (answer.Header.ResponseCode == DnsHeaderResponseCode.NoError && answer.Header.IsAuthenticData)
                {
                    return resolver;
                }

                last = $"{answer.Header.ResponseCode}, AD={answer.Header.IsAuthenticData}";
            }
            catch (DnsResponseException)
            {
                // Not listening yet.
            }

            if (DateTime.UtcNow > deadline)
            {
                resolver.Dispose();
                var direct = new LookupClient(new LookupClientOptions(zone.EndPoint) { UseCache = false, Timeout = TimeSpan.FromSeconds(1), Retries = 0, ThrowDnsErrors = false, RequestDnsSecRecords = true });
                var authoritative = await direct.QueryAsync(zone.Name, QueryType.SOA);
                throw new InvalidOperationException(
                    $"unbound did not answer a validated SOA of {zone.Name} within 20 s (last: {last}; the zone's server: " +
                    $"{authoritative.Header.ResponseCode}, {authoritative.Answers.Count} answers): {resolver.Log}");
            }

            await Task.Delay(100);
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(5_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _process.Dispose();
    }
}
