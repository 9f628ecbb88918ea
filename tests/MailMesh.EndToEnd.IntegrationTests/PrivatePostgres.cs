using System.Diagnostics;
using System.Net;
using MailMesh.Testing.Infrastructure;
using Npgsql;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// A PostgreSQL cluster of this test's own (initdb + pg_ctl on a free loopback port, data in a temp directory), so a
/// test can stop and restart its database without touching the shared server. Run as the <c>postgres</c> user when
/// the tests run as root (initdb refuses root).
/// </summary>
internal sealed class PrivatePostgres : IAsyncDisposable
{
    private readonly string _directory;
    private readonly string _binaries;

    private PrivatePostgres(string directory, string binaries, int port)
    {
        _directory = directory;
        _binaries = binaries;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Database = "postgres",
        Timeout = 3,
        MaxPoolSize = 20,
    }.ConnectionString;

    private string DataDirectory => Path.Combine(_directory, "data");

    public static async Task<PrivatePostgres> StartAsync()
    {
        var binaries = Path.GetDirectoryName(Which("pg_ctl")) ?? throw new InvalidOperationException("pg_ctl not found");
        var directory = Path.Combine(Path.GetTempPath(), "mailmesh-pg-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        if (Environment.UserName == "root")
        {
            await RunAsync("chown", $"postgres {directory}", asPostgres: false);
        }

        var postgres = new PrivatePostgres(directory, binaries, LoopbackPort.Free(IPAddress.Loopback));
        await postgres.RunToolAsync("initdb", $"-D {postgres.DataDirectory} -U postgres -A trust --no-sync");
        await postgres.StartServerAsync();
        return postgres;
    }

    public Task StartServerAsync() =>
        RunToolAsync("pg_ctl", $"-D {DataDirectory} -l {Path.Combine(_directory, "log")} -w -t 60 -o \"-c listen_addresses=127.0.0.1 -c port={Port} -c max_connections=60 -c fsync=off\" start");

    /// <summary>Stops the server at once (connections are cut, as in a crash or a restart).</summary>
    public Task StopServerAsync() => RunToolAsync("pg_ctl", $"-D {DataDirectory} -m immediate -w stop");

    private Task RunToolAsync(string tool, string arguments) => RunAsync(Path.Combine(_binaries, tool), arguments, asPostgres: Environment.UserName == "root");

    private static async Task RunAsync(string file, string arguments, bool asPostgres)
    {
        var info = asPostgres
            ? new ProcessStartInfo("runuser", $"-u postgres -- {file} {arguments}")
            : new ProcessStartInfo(file, arguments);
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {arguments} exited with {process.ExitCode}: {await output} {await error}");
        }
    }

    private static string Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Select(dir => Path.Combine(dir, tool))
            .FirstOrDefault(File.Exists) ?? tool;

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopServerAsync();
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Left in the temp directory.
        }
    }
}
