using System.Diagnostics;
using System.Globalization;

namespace MailMesh.Chaos;

/// <summary>The five services of the distributed mode as operating-system processes, each on its own HTTP port.</summary>
internal sealed class ServiceFleet : IAsyncDisposable
{
    public static readonly IReadOnlyList<string> Services = ["Policy", "Queue", "Dns", "Delivery", "Ingress"];

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(120);

    private readonly string _binaries;
    private readonly string _logDirectory;
    private readonly IReadOnlyDictionary<string, string> _settings;
    // Written by StartAllAsync's concurrent starts: a plain Dictionary lost entries there ("KillIngress failed: the
    // given key 'Ingress' was not present") and broke clean-up, leaving the servers running.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Process> _processes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _httpPorts = [];
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };

    public ServiceFleet(string repositoryRoot, string configuration, string logDirectory, IReadOnlyDictionary<string, string> settings)
    {
        _binaries = Path.Combine(repositoryRoot, "services", "{0}", "bin", configuration, "net10.0", "{0}.dll");
        _logDirectory = logDirectory;
        _settings = settings;
        Directory.CreateDirectory(logDirectory);
        foreach (var service in Services)
        {
            _httpPorts[service] = MailMesh.Testing.Infrastructure.LoopbackPort.Free();
        }
    }

    /// <summary>The build output of a project, checked before anything starts.</summary>
    public string Binary(string project)
    {
        var dll = string.Format(CultureInfo.InvariantCulture, _binaries, project);
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll} is missing: build first (dotnet build tests/MailMesh.Chaos.IntegrationTests -c Release)", dll);
    }

    public string LogFile(string service) => Path.Combine(_logDirectory, service.ToLowerInvariant() + ".log");

    public int? ProcessId(string service) => _processes.TryGetValue(service, out var p) && !p.HasExited ? p.Id : null;

    /// <summary>Runs the schema migrator once (it retries while the database starts).</summary>
    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        var dll = Binary("MailMesh.Migrator");
        var info = OsCommand.Info(null, "dotnet", [dll], Environment(null), Path.GetDirectoryName(dll));
        await OsCommand.RunCheckedAsync(info, TimeSpan.FromSeconds(180), cancellationToken);
    }

    /// <summary>Starts every service at once and waits until each answers /readyz.</summary>
    public Task StartAllAsync(CancellationToken cancellationToken) => Task.WhenAll(Services.Select(s => StartAsync(s, cancellationToken)));

    /// <summary>Starts <paramref name="service"/> and waits until its /readyz answers 200 (RabbitMQ and PostgreSQL reachable).</summary>
    public async Task StartAsync(string service, CancellationToken cancellationToken)
    {
        var dll = Binary("MailMesh." + service);
        var log = LogFile(service);
        await File.AppendAllTextAsync(log, $"===== chaos: start {DateTimeOffset.UtcNow:O}\n", cancellationToken);
        var process = OsCommand.StartLogged(OsCommand.Info(null, "dotnet", [dll], Environment(service), Path.GetDirectoryName(dll)), log);
        _processes[service] = process;
        await File.WriteAllTextAsync(Path.Combine(_logDirectory, service.ToLowerInvariant() + ".pid"), process.Id.ToString(CultureInfo.InvariantCulture), cancellationToken);
        var ready = new Uri($"http://127.0.0.1:{_httpPorts[service]}/readyz");
        var deadline = Stopwatch.GetTimestamp() + (long)(ReadyTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{service} exited with {process.ExitCode} while starting; see {log}");
            }

            try
            {
                using var response = await _http.GetAsync(ready, cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"{service} not ready at {ready} after {ReadyTimeout.TotalSeconds:F0} s; see {log}");
            }

            await Task.Delay(250, cancellationToken);
        }
    }

    /// <summary>SIGKILL: no shutdown, no goodbye, no ack. Returns the process id it killed.</summary>
    public async Task<int> KillAsync(string service)
    {
        var process = _processes[service];
        var id = process.Id;
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        await File.AppendAllTextAsync(LogFile(service), $"===== chaos: SIGKILL {DateTimeOffset.UtcNow:O}\n");
        process.Dispose();
        _processes.TryRemove(service, out _);
        return id;
    }

    /// <summary>Clean-up: SIGKILL to whatever still runs (the run is over; nothing is owed to a graceful stop here).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes.Values)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
                }
            }
            catch (Exception)
            {
            }

            process.Dispose();
        }

        _processes.Clear();
        _http.Dispose();
    }

    private Dictionary<string, string> Environment(string? service)
    {
        var environment = new Dictionary<string, string>(_settings)
        {
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
        };
        if (service is not null)
        {
            environment["Urls"] = $"http://127.0.0.1:{_httpPorts[service]}";
        }

        return environment;
    }
}
