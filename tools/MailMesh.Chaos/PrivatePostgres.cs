using System.Globalization;
using MailMesh.Testing.Infrastructure;
using Npgsql;

namespace MailMesh.Chaos;

/// <summary>
/// A PostgreSQL cluster of the run's own (initdb in the work directory, a free port on 127.0.0.1, fsync on), so that
/// stopping and starting it never touches the machine's shared server. As root its files belong to, and its tools
/// run as, the <c>postgres</c> user.
/// </summary>
internal sealed class PrivatePostgres
{
    private const string User = "postgres";
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(120);

    private readonly string _bin;
    private readonly string _dataDirectory;
    private readonly string _logFile;

    private PrivatePostgres(string bin, string directory, int port)
    {
        _bin = bin;
        _dataDirectory = Path.Combine(directory, "data");
        _logFile = Path.Combine(directory, "postgres.log");
        Port = port;
        ConnectionString = $"Host=127.0.0.1;Port={port};Username=mailmesh;Password=mailmesh;Database=mailmesh";
    }

    public int Port { get; }

    /// <summary>The services' connection string (database mailmesh, owner mailmesh, Npgsql's default pool).</summary>
    public string ConnectionString { get; }

    public string LogFile => _logFile;

    /// <summary>Creates the cluster under <paramref name="workDirectory"/>/postgres, starts it, and creates the database.</summary>
    public static async Task<PrivatePostgres> CreateAsync(string workDirectory, int maxConnections, CancellationToken cancellationToken)
    {
        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderBy(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), CultureInfo.InvariantCulture, out var v) ? v : 0).LastOrDefault()
            : null;
        if (bin is null)
        {
            throw new InvalidOperationException("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (deploy/scripts/deps.sh installs them)");
        }

        var directory = Path.Combine(workDirectory, "postgres");
        Directory.CreateDirectory(directory);
        var server = new PrivatePostgres(bin, directory, LoopbackPort.Free());
        var passwordFile = Path.Combine(directory, "password");
        await File.WriteAllTextAsync(passwordFile, "mailmesh\n", cancellationToken);
        await ChownAsync(directory, cancellationToken);

        // The superuser is mailmesh (password auth over TCP); the socket lives in the cluster's own directory.
        await OsCommand.RunCheckedAsync(OsCommand.Info(User, Path.Combine(bin, "initdb"),
            ["-D", server._dataDirectory, "-U", "mailmesh", "--pwfile", passwordFile, "--auth-host=scram-sha-256", "--auth-local=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"]), ToolTimeout, cancellationToken);
        File.Delete(passwordFile);
        await File.AppendAllTextAsync(Path.Combine(server._dataDirectory, "postgresql.conf"), $"""

            # mailmesh chaos run: loopback only, durable commits
            listen_addresses = '127.0.0.1'
            port = {server.Port}
            unix_socket_directories = '{directory}'
            fsync = on
            synchronous_commit = on
            max_connections = {maxConnections}
            logging_collector = off

            """, cancellationToken);
        await ChownAsync(server._dataDirectory, cancellationToken);
        try
        {
            await server.StartAsync(cancellationToken);
            await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            await using var create = new NpgsqlCommand("CREATE DATABASE mailmesh", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) =>
        OsCommand.RunCheckedAsync(OsCommand.Info(User, Path.Combine(_bin, "pg_ctl"), ["-D", _dataDirectory, "-l", _logFile, "-w", "-t", "100", "start"]), ToolTimeout, cancellationToken);

    /// <summary>A normal stop (<c>-m fast</c>: open sessions are disconnected, what is committed stays committed).</summary>
    public Task StopAsync(CancellationToken cancellationToken) =>
        OsCommand.RunCheckedAsync(OsCommand.Info(User, Path.Combine(_bin, "pg_ctl"), ["-D", _dataDirectory, "-m", "fast", "-w", "-t", "100", "stop"]), ToolTimeout, cancellationToken);

    /// <summary>Clean-up: stops the cluster if it runs (immediate mode: its data is thrown away), never throws.</summary>
    public async Task DisposeAsync()
    {
        if (!File.Exists(Path.Combine(_dataDirectory, "postmaster.pid")))
        {
            return;
        }

        foreach (var mode in new[] { "immediate", "fast" })
        {
            try
            {
                var (exitCode, _) = await OsCommand.RunAsync(OsCommand.Info(User, Path.Combine(_bin, "pg_ctl"), ["-D", _dataDirectory, "-m", mode, "-w", "-t", "30", "stop"]), TimeSpan.FromSeconds(40));
                if (exitCode == 0)
                {
                    return;
                }
            }
            catch (Exception)
            {
            }
        }
    }

    private static async Task ChownAsync(string path, CancellationToken cancellationToken)
    {
        if (OsCommand.IsRoot)
        {
            await OsCommand.RunCheckedAsync(OsCommand.Info(null, "chown", ["-R", $"{User}:{User}", path]), ToolTimeout, cancellationToken);
        }
    }
}
