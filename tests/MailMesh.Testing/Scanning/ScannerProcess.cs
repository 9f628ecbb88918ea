using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace MailMesh.Testing.Scanning;

/// <summary>
/// A scanner daemon (rspamd, clamd) started in the foreground by a test, with its own configuration in a temporary
/// directory; stopped (SIGTERM, then kill) and the directory removed on dispose. Its output is kept for failure messages.
/// </summary>
public abstract class ScannerProcess : IAsyncDisposable
{
    private readonly StringBuilder _output = new();
    private Process? _process;
    private int _disposed;

    protected ScannerProcess(string name)
    {
        Directory = Path.Combine(Path.GetTempPath(), $"mailmesh-{name}-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid().ToString("N")[..12]}");
        System.IO.Directory.CreateDirectory(Directory);
    }

    /// <summary>The temporary directory holding the configuration, database, logs and pid file.</summary>
    public string Directory { get; }

    /// <summary>What the daemon wrote to stdout and stderr so far, with the tail of its log file.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output + TailOfLog();
            }
        }
    }

    /// <summary>The daemon's log file, for failure messages.</summary>
    protected abstract string LogFile { get; }

    /// <summary>True once the daemon answers its health probe (rspamd /ping, clamd PING).</summary>
    protected abstract Task<bool> IsReadyAsync(CancellationToken cancellationToken);

    protected static string Find(string command)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Append("/usr/sbin").Append("/usr/bin"))
        {
            var path = Path.Combine(directory, command);
            if (File.Exists(path))
            {
                return path;
            }
        }

        throw new InvalidOperationException($"{command} is not installed: run MAILMESH_TEST_TOOLS=1 deploy/scripts/deps.sh");
    }

    /// <summary>Starts the daemon and waits until it is ready (or fails with its output).</summary>
    protected async Task StartAsync(string fileName, IEnumerable<string> arguments, TimeSpan readyTimeout)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Directory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        using var deadline = new CancellationTokenSource(readyTimeout);
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Path.GetFileName(fileName)} exited with {_process.ExitCode.ToString(CultureInfo.InvariantCulture)} while starting:\n{Output}");
            }

            try
            {
                if (await IsReadyAsync(deadline.Token))
                {
                    return;
                }

                await Task.Delay(100, deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"{Path.GetFileName(fileName)} was not ready within {readyTimeout}:\n{Output}");
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (_output.Length < 64 * 1024)
            {
                _output.AppendLine(line);
            }
        }
    }

    private string TailOfLog()
    {
        try
        {
            var lines = File.ReadAllLines(LogFile);
            return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 40)));
        }
        catch (IOException)
        {
            return string.Empty;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_process is { HasExited: false } process)
        {
            // SIGTERM lets the daemon stop its workers; a daemon that does not stop within 10 s is killed with its children.
            using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }

        _process?.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A worker still closing a file: the directory is in /tmp and named per process.
        }

        GC.SuppressFinalize(this);
    }
}
