using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Chaos;

/// <summary>
/// A RabbitMQ node of the run's own: its own node name (<c>mailmesh-chaos-&lt;pid&gt;@localhost</c>), AMQP, distribution
/// and epmd ports on 127.0.0.1, data, logs, configuration and Erlang cookie in the work directory, no plugins. Stopping
/// and starting it never touches the machine's shared broker. As root it runs as the <c>rabbitmq</c> user.
/// </summary>
internal sealed class PrivateRabbitMq
{
    private const string User = "rabbitmq";
    private const string Sbin = "/usr/lib/rabbitmq/bin";
    private static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(150);

    private readonly string _directory;
    private readonly Dictionary<string, string> _environment;
    private Process? _process;

    private PrivateRabbitMq(string directory, string nodeName, int amqpPort, int distributionPort, int epmdPort)
    {
        _directory = directory;
        NodeName = nodeName;
        AmqpPort = amqpPort;
        _environment = new Dictionary<string, string>
        {
            ["HOME"] = Path.Combine(directory, "home"),
            ["RABBITMQ_NODENAME"] = nodeName,
            ["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1",
            ["RABBITMQ_NODE_PORT"] = amqpPort.ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_DIST_PORT"] = distributionPort.ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}",
            ["ERL_EPMD_PORT"] = epmdPort.ToString(CultureInfo.InvariantCulture),
            ["ERL_EPMD_ADDRESS"] = "127.0.0.1",
            ["RABBITMQ_MNESIA_BASE"] = Path.Combine(directory, "mnesia"),
            ["RABBITMQ_PID_FILE"] = Path.Combine(directory, "beam.pid"),
            ["RABBITMQ_LOG_BASE"] = Path.Combine(directory, "log"),
            ["RABBITMQ_CONFIG_FILE"] = Path.Combine(directory, "rabbitmq.conf"),
            ["RABBITMQ_ADVANCED_CONFIG_FILE"] = Path.Combine(directory, "advanced.config"),
            ["RABBITMQ_CONF_ENV_FILE"] = Path.Combine(directory, "rabbitmq-env.conf"),
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(directory, "enabled_plugins"),
            ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
        };
    }

    public string NodeName { get; }

    public int AmqpPort { get; }

    /// <summary>The services' connection string (guest, which RabbitMQ allows from loopback only).</summary>
    public string ConnectionString => $"amqp://guest:guest@127.0.0.1:{AmqpPort}/";

    public string LogFile => Path.Combine(_directory, "server.log");

    public static async Task<PrivateRabbitMq> CreateAsync(string workDirectory, CancellationToken cancellationToken)
    {
        if (!File.Exists(Path.Combine(Sbin, "rabbitmq-server")))
        {
            throw new InvalidOperationException($"no RabbitMQ server at {Sbin} (deploy/scripts/deps.sh installs it)");
        }

        var directory = Path.Combine(workDirectory, "rabbitmq");
        Directory.CreateDirectory(Path.Combine(directory, "home"));
        var node = new PrivateRabbitMq(directory, $"mailmesh-chaos-{Environment.ProcessId}@localhost", LoopbackPort.Free(), LoopbackPort.Free(), LoopbackPort.Free());
        await File.WriteAllTextAsync(Path.Combine(directory, "rabbitmq.conf"), $"""
            # mailmesh chaos run: a private node on loopback
            listeners.tcp.1 = 127.0.0.1:{node.AmqpPort}
            loopback_users.guest = true
            log.file.level = warning

            """, cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(directory, "enabled_plugins"), "[].\n", cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(directory, "epmd-port"), node._environment["ERL_EPMD_PORT"], cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(directory, "rabbitmq-env.conf"), "", cancellationToken);
        if (OsCommand.IsRoot)
        {
            await OsCommand.RunCheckedAsync(OsCommand.Info(null, "chown", ["-R", $"{User}:{User}", directory]), TimeSpan.FromSeconds(30), cancellationToken);
        }

        try
        {
            await node.StartAsync(cancellationToken);
            return node;
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the node (a child process) and waits until its AMQP listener, opened last in the boot, accepts.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _process = OsCommand.StartLogged(OsCommand.Info(User, Path.Combine(Sbin, "rabbitmq-server"), [], _environment, _directory), LogFile);
        var deadline = Stopwatch.GetTimestamp() + (long)(BootTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"RabbitMQ node {NodeName} exited with {_process.ExitCode} while booting; see {LogFile}");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, AmqpPort, cancellationToken);
                return;
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(250, cancellationToken);
            }
        }
    }

    /// <summary><c>rabbitmqctl -n &lt;node&gt; stop</c>: the broker's own orderly stop; returns when the node's process has exited.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await OsCommand.RunCheckedAsync(Ctl(["stop"]), TimeSpan.FromSeconds(90), cancellationToken);
        if (_process is not null)
        {
            await _process.WaitForExitAsync(cancellationToken).WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
            _process.Dispose();
            _process = null;
        }
    }

    /// <summary>Messages ready or unacknowledged per queue (queues holding none left out), or null when the node does not answer.</summary>
    public async Task<Dictionary<string, long>?> QueuedMessagesAsync(CancellationToken cancellationToken)
    {
        try
        {
            var (exitCode, output) = await OsCommand.RunAsync(Ctl(["-q", "list_queues", "--no-table-headers", "name", "messages"]), TimeSpan.FromSeconds(30), cancellationToken);
            if (exitCode != 0)
            {
                return null;
            }

            var queues = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length == 2 && long.TryParse(fields[1], CultureInfo.InvariantCulture, out var messages) && messages > 0)
                {
                    queues[fields[0]] = messages;
                }
            }

            return queues;
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>
    /// Clean-up: kills the node if it runs (its data is thrown away, so an orderly stop, which takes a minute on a busy
    /// machine, buys nothing), then stops its private epmd; never throws.
    /// </summary>
    public async Task DisposeAsync()
    {
        try
        {
            if (_process is { HasExited: false })
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }
        }
        catch (Exception)
        {
        }

        try
        {
            // The node started an epmd daemon on the run's own port: nothing else uses it.
            await OsCommand.RunAsync(OsCommand.Info(User, "epmd", ["-port", _environment["ERL_EPMD_PORT"], "-kill"], _environment), TimeSpan.FromSeconds(15));
        }
        catch (Exception)
        {
        }
    }

    private System.Diagnostics.ProcessStartInfo Ctl(IEnumerable<string> arguments) =>
        OsCommand.Info(User, Path.Combine(Sbin, "rabbitmqctl"), new[] { "-n", NodeName }.Concat(arguments), _environment, _directory);
}
