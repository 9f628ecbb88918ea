using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.LoadTool.Tests;

/// <summary>
/// More client connections than Ingress allows from one address (50 by default): the targets the tool starts get room
/// for all of them, and a target that refuses one anyway is a clear line and exit code 1, not a stack trace.
/// </summary>
public sealed class TargetLimitsTests
{
    private static readonly IPEndPoint Dns = new(IPAddress.Loopback, 53);

    [Fact]
    public void A_started_target_allows_every_client_connection_from_loopback()
    {
        var settings = Target.Settings(LoadOptions.Parse(["--connections", "80", "--sink", "builtin"]), Dns, sinkPort: 2626);

        Assert.Equal("80", settings["Ingress__MaxConnectionsPerIp"]);
        Assert.Equal("2000", settings["Ingress__MaxConnections"]);
    }

    [Fact]
    public void Up_to_the_default_limit_the_target_keeps_its_own_settings()
    {
        var settings = Target.Settings(LoadOptions.Parse(["--connections", "40", "--sink", "builtin"]), Dns, sinkPort: 2626);

        Assert.False(settings.ContainsKey("Ingress__MaxConnectionsPerIp"));
        Assert.False(settings.ContainsKey("Ingress__MaxConnections"));
    }

    [Fact]
    public void A_scenario_that_raises_the_limits_further_keeps_its_own()
    {
        var extra = new Dictionary<string, string> { ["Ingress__MaxConnectionsPerIp"] = "5000", ["Ingress__MaxConnections"] = "5000" };

        var settings = Target.Settings(LoadOptions.Parse(["--connections", "80", "--sink", "builtin"]), Dns, sinkPort: 2626, extra);

        Assert.Equal("5000", settings["Ingress__MaxConnectionsPerIp"]);
        Assert.Equal("5000", settings["Ingress__MaxConnections"]);
    }

    [Fact]
    public async Task A_421_greeting_names_the_connection_limit_and_what_to_do()
    {
        await using var server = RefusingServer.Start("421 4.7.0 Too many connections from your address, try again later");

        var client = new SmtpLoadClient("127.0.0.1", server.Port);
        var refused = await Assert.ThrowsAsync<LoadClientException>(() =>
            client.RunAsync(7, 1, "x\r\n.\r\n"u8.ToArray(), "load.test", singleRecipient: true, CancellationToken.None));

        Assert.Contains("connection 7", refused.Message, StringComparison.Ordinal);
        Assert.Contains("421 4.7.0 Too many connections", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Ingress:MaxConnectionsPerIp", refused.Message, StringComparison.Ordinal);
        Assert.Contains("--connections", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_tool_reports_a_refusing_target_in_one_line_and_exits_1()
    {
        await using var server = RefusingServer.Start("421 4.7.0 Too many connections from your address, try again later");

        var (exitCode, output, error) = await RunToolAsync(
            "--target", $"127.0.0.1:{server.Port}", "--sink", "builtin", "--messages", "4", "--connections", "2", "--timeout", "60");

        Assert.True(exitCode == 1, $"exit code {exitCode}\n{output}\n{error}");
        Assert.Contains("refused connection", error, StringComparison.Ordinal);
        Assert.Contains("Ingress:MaxConnectionsPerIp", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Standalone_takes_more_connections_than_its_default_per_address_limit()
    {
        // The run that used to end in "expected 220, got: 421 ..." and a stack trace: 60 connections from 127.0.0.1.
        var (exitCode, output, error) = await RunToolAsync(
            "--target", "standalone", "--sink", "builtin", "--messages", "60", "--connections", "60", "--timeout", "120");

        Assert.True(exitCode == 0, $"exit code {exitCode}\n{output}\n{error}");
        Assert.Contains("accepted 60/60", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_distributed_run_without_PostgreSQL_says_so_and_how_to_start_it_in_one_line()
    {
        // A new user's first distributed run before deps.sh: it ended in "Unhandled exception. Npgsql.NpgsqlException
        // (0x80004005): Failed to connect to 127.0.0.1:5432" and a stack trace.
        var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        var port = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();

        var (exitCode, output, error) = await RunToolAsync(
            new Dictionary<string, string> { ["MAILMESH_TEST_POSTGRES"] = $"Host=127.0.0.1;Port={port};Username=mailmesh;Password=mailmesh;Database=mailmesh" },
            "--target", "distributed", "--sink", "builtin", "--messages", "4", "--connections", "2", "--timeout", "60");

        Assert.True(exitCode == 1, $"exit code {exitCode}\n{output}\n{error}");
        Assert.Contains("needs PostgreSQL on loopback", error, StringComparison.Ordinal);
        Assert.Contains("deploy/scripts/deps.sh", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    private static Task<(int ExitCode, string Output, string Error)> RunToolAsync(params string[] arguments) =>
        RunToolAsync(new Dictionary<string, string>(), arguments);

    /// <summary>The built tool run as a user runs it: <c>dotnet MailMesh.LoadTool.dll ...</c>.</summary>
    private static async Task<(int ExitCode, string Output, string Error)> RunToolAsync(Dictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MailMesh.LoadTool.dll"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output, await error);
    }

    /// <summary>A server that answers every connection with one reply line and closes it, as a full Ingress does.</summary>
    private sealed class RefusingServer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly Task _accepting;
        private readonly byte[] _reply;

        private RefusingServer(string reply)
        {
            _reply = Encoding.ASCII.GetBytes(reply + "\r\n");
            _listener = new TcpListener(IPAddress.Loopback, 0);
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public static RefusingServer Start(string reply) => new(reply);

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    using var connection = await _listener.AcceptTcpClientAsync();
                    await connection.GetStream().WriteAsync(_reply);
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
            {
                // Stopped.
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _accepting;
        }
    }
}
