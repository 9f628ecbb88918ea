using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>MailMesh.Standalone as an operating-system process, started the way a user runs the built binary.</summary>
internal sealed class StandaloneProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private StandaloneProcess(Process process, int smtpPort, int httpPort)
    {
        _process = process;
        SmtpPort = smtpPort;
        HttpPort = httpPort;
    }

    public int SmtpPort { get; }
    public int HttpPort { get; }
    public int Pid => _process.Id;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// Starts the process with the given settings (as --Key=value arguments) and waits until SMTP answers. A port chosen
    /// free can be taken by another test process before this one binds it; that start is retried on fresh ports.
    /// </summary>
    public static async Task<StandaloneProcess> StartAsync(string workingDirectory, IReadOnlyDictionary<string, string> settings)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(workingDirectory, settings);
            }
            catch (InvalidOperationException ex) when (attempt < 3 && ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                // Another process took a port between the choosing and the binding: choose again.
            }
        }
    }

    private static async Task<StandaloneProcess> StartOnceAsync(string workingDirectory, IReadOnlyDictionary<string, string> settings)
    {
        var smtpPort = LoopbackPort.Free();
        var httpPort = LoopbackPort.Free();
        var process = Launch(workingDirectory, settings.Concat(new Dictionary<string, string>
        {
            ["Ingress:Listen"] = $"127.0.0.1:{smtpPort}",
            ["Mailbox:Pop3Listen"] = settings.GetValueOrDefault("Mailbox:Pop3Listen", "127.0.0.1:0"),
            ["Mailbox:ImapListen"] = settings.GetValueOrDefault("Mailbox:ImapListen", "127.0.0.1:0"),
            ["Urls"] = $"http://127.0.0.1:{httpPort}",
        }));
        var standalone = new StandaloneProcess(process, smtpPort, httpPort);
        process.OutputDataReceived += (_, e) => standalone.Append(e.Data);
        process.ErrorDataReceived += (_, e) => standalone.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                var exited = new InvalidOperationException($"Standalone exited with {process.ExitCode}:\n{standalone.Output}");
                process.Dispose();
                throw exited;
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, smtpPort);
                return standalone;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        throw new TimeoutException($"Standalone did not listen on {smtpPort}:\n{standalone.Output}");
    }

    /// <summary>Runs the process to completion (for configuration errors) and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(string workingDirectory, IReadOnlyDictionary<string, string> settings)
    {
        using var process = Launch(workingDirectory, settings);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>SIGKILL: no shutdown, no flush, nothing graceful.</summary>
    public async Task CrashAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    private static Process Launch(string workingDirectory, IEnumerable<KeyValuePair<string, string>> settings)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.ArgumentList.Add(StandaloneBinary());
        foreach (var (key, value) in settings)
        {
            info.ArgumentList.Add($"--{key}={value}");
        }

        info.Environment["Logging__LogLevel__Default"] = "Warning";
        return Process.Start(info) ?? throw new InvalidOperationException("could not start MailMesh.Standalone");
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    /// <summary>The Standalone build output, built with this test project (it is a project reference).</summary>
    private static string StandaloneBinary()
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "MailMesh.Standalone.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException("MailMesh.Standalone.dll is not next to the tests", dll);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await CrashAsync();
        }

        _process.Dispose();
    }
}
