using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace MailMesh.Testing.Hosting;

/// <summary>
/// A MailMesh service as an operating-system process (<c>dotnet services/MailMesh.X/bin/&lt;cfg&gt;/net10.0/MailMesh.X.dll</c>),
/// configured through environment variables, with its output kept for diagnostics.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private ServiceProcess(Process process, string name)
    {
        _process = process;
        Name = name;
    }

    /// <summary>The project name, e.g. "MailMesh.Delivery".</summary>
    public string Name { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything the process wrote so far, stdout and stderr interleaved.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>
    /// Starts <paramref name="project"/>'s build output with <paramref name="settings"/> and waits until the host reports
    /// it has started (for Ingress: listening; for every service: bus connected).
    /// </summary>
    public static async Task<ServiceProcess> StartAsync(string project, IReadOnlyDictionary<string, string> settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var dll = ServiceBinary(project);
        var info = new ProcessStartInfo("dotnet", dll)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        foreach (var (key, value) in settings)
        {
            info.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        // Readiness and shutdown are read from the host's lifetime log lines.
        info.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        info.Environment["Logging__LogLevel__MailMesh"] = "Information";

        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {project}");
        var service = new ServiceProcess(process, project);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }

            service._output.Enqueue(line);
            if (line.Contains("Application started", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        }

        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var exited = process.WaitForExitAsync();
            var first = await Task.WhenAny(ready.Task, exited).WaitAsync(StartTimeout);
            if (first == exited)
            {
                throw new InvalidOperationException($"{project} exited with code {process.ExitCode}:\n{service.Output}");
            }
        }
        catch
        {
            await service.DisposeAsync();
            throw;
        }

        return service;
    }

    /// <summary>SIGTERM, as Kubernetes and systemd send it: the graceful stop.</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", Id.ToString(CultureInfo.InvariantCulture)]))
            ?? throw new InvalidOperationException("could not run kill");
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -TERM {Id} exited with {kill.ExitCode}");
        }
    }

    /// <summary>SIGKILL: no shutdown, no goodbye, no ack; completes when the process is gone.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
    }

    /// <summary>Completes with the exit code when the process has exited; fails after <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name} (pid {Id}) did not exit within {timeout}:\n{Output}");
        }

        // WaitForExitAsync returns once the output streams are drained too, so Output is complete here.
        return _process.ExitCode;
    }

    /// <summary>The service's own build output, built alongside the running tests in the same configuration.</summary>
    private static string ServiceBinary(string project)
    {
        var testDirectory = AppContext.BaseDirectory;
        var configuration = testDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        var root = new DirectoryInfo(testDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "MailMesh.sln")))
        {
            root = root.Parent;
        }

        var dll = Path.Combine(root?.FullName ?? throw new InvalidOperationException("repository root not found"),
            "services", project, "bin", configuration, "net10.0", project + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException("build the solution first", dll);
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}
