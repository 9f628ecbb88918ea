using System.Globalization;
using System.Net;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Testing.Scanning;

/// <summary>
/// A real rspamd (Debian's package) for tests: one normal worker on 127.0.0.1 and a free port, Debian's stock rules
/// (/etc/rspamd) with a local configuration directory of its own in a temporary directory. No redis (the modules that
/// need it disable themselves), no controller, no hyperscan compilation and a five-entry TLD list (the full public
/// suffix list takes 15 s to compile at start), a DNS resolver on a closed loopback port so network rules fail at
/// once instead of waiting for the internet, and the hfilter module (host names that do not resolve) off, as nothing
/// resolves here. Ready when <c>GET /ping</c> answers "pong".
/// </summary>
/// <remarks>GTUBE (<see cref="Gtube"/>) makes rspamd answer action "reject" whatever the other rules say.</remarks>
public sealed class RspamdServer : ScannerProcess
{
    /// <summary>The GTUBE test string: rspamd rejects any message whose body contains it.</summary>
    public const string Gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

    private static readonly HttpClient Probe = new() { Timeout = TimeSpan.FromSeconds(2) };

    private RspamdServer(int port)
        : base("rspamd")
    {
        Port = port;
    }

    public int Port { get; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    /// <summary>The base URL of the normal worker (<c>/checkv2</c>, <c>/ping</c>).</summary>
    public Uri Url => new($"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/");

    protected override string LogFile => Path.Combine(Directory, "rspamd.log");

    public static async Task<RspamdServer> StartAsync()
    {
        var rspamd = Find("rspamd");
        var server = new RspamdServer(LoopbackPort.Free());
        try
        {
            server.WriteConfiguration();
            await server.StartAsync(rspamd,
            [
                "-f", "-i", "-u", "root", "-g", "root",
                "-c", Path.Combine(server.Directory, "rspamd.conf"),
                "--var", "LOCAL_CONFDIR=" + server.Directory,
                "--var", "RUNDIR=" + server.Directory,
                "--var", "DBDIR=" + server.Directory,
                "--var", "LOGDIR=" + server.Directory,
            ], TimeSpan.FromSeconds(90));
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    private void WriteConfiguration()
    {
        // The top level of /etc/rspamd/rspamd.conf with only the normal worker, on our port; everything else
        // (modules, scores, actions: reject at 15, add header at 6) is Debian's default.
        File.WriteAllText(Path.Combine(Directory, "rspamd.conf"), $$"""
            .include "$CONFDIR/common.conf"
            options {
                pidfile = "$RUNDIR/rspamd.pid";
                .include "$CONFDIR/options.inc"
                .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
            }
            logging {
                type = "file";
                filename = "$LOGDIR/rspamd.log";
                level = "info";
            }
            worker "normal" {
                bind_socket = "127.0.0.1:{{Port.ToString(CultureInfo.InvariantCulture)}}";
                .include "$CONFDIR/worker-normal.inc"
                count = 1;
            }
            """);
        var local = Path.Combine(Directory, "local.d");
        System.IO.Directory.CreateDirectory(local);
        File.WriteAllText(Path.Combine(Directory, "tld.dat"), "com\norg\nnet\ntest\nexample\n");
        File.WriteAllText(Path.Combine(local, "options.inc"), $$"""
            dns {
                nameserver = ["127.0.0.1:{{LoopbackPort.Free().ToString(CultureInfo.InvariantCulture)}}"];
                timeout = 0.2s;
                retransmits = 1;
            }
            url_tld = "{{Path.Combine(Directory, "tld.dat")}}";
            disable_hyperscan = true;
            """);

        // hfilter scores a client whose host name, HELO and sender domain do not resolve (up to 6 points here, where
        // nothing resolves, and how much depends on which DNS timeouts win), so a clean message would land anywhere
        // between "no action" and "add header". Without the internet that rule says nothing: off.
        File.WriteAllText(Path.Combine(local, "hfilter.conf"), "enabled = false;\n");
    }

    protected override async Task<bool> IsReadyAsync(CancellationToken cancellationToken)
    {
        try
        {
            var pong = await Probe.GetStringAsync(new Uri(Url, "ping"), cancellationToken);
            return pong.Trim() == "pong";
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
