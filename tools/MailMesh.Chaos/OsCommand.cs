using System.Diagnostics;
using System.Text;

namespace MailMesh.Chaos;

/// <summary>
/// Runs the servers' own tools (initdb, pg_ctl, rabbitmq-server, rabbitmqctl). As root they run as the server's
/// system user (<c>runuser -u postgres</c>): PostgreSQL refuses to run as root, and a RabbitMQ node belongs to its user.
/// </summary>
internal static class OsCommand
{
    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>A start info for <paramref name="program"/> as <paramref name="user"/> (when root) with exactly these variables set.</summary>
    public static ProcessStartInfo Info(string? user, string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        ProcessStartInfo info;
        if (IsRoot && user is not null)
        {
            // runuser resets HOME and friends; env sets what the tool needs after the switch.
            info = new ProcessStartInfo("runuser");
            foreach (var argument in new[] { "-u", user, "--", "env" })
            {
                info.ArgumentList.Add(argument);
            }

            foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            {
                info.ArgumentList.Add($"{key}={value}");
            }

            info.ArgumentList.Add(program);
        }
        else
        {
            info = new ProcessStartInfo(program);
            foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            {
                info.Environment[key] = value;
            }
        }

        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.RedirectStandardInput = true;
        if (workingDirectory is not null)
        {
            info.WorkingDirectory = workingDirectory;
        }

        return info;
    }

    /// <summary>Runs to completion (killed after <paramref name="timeout"/>); returns the exit code and the output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(ProcessStartInfo info, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {info.FileName}");
        process.StandardInput.Close();
        var output = new StringBuilder();
        var gate = new Lock();
        void OnLine(string? line)
        {
            if (line is not null)
            {
                lock (gate)
                {
                    output.AppendLine(line);
                }
            }
        }

        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"{Describe(info)} did not finish within {timeout.TotalSeconds:F0} s:\n{output}");
        }

        lock (gate)
        {
            return (process.ExitCode, output.ToString());
        }
    }

    /// <summary>Runs and throws, with the output, unless it exits 0.</summary>
    public static async Task<string> RunCheckedAsync(ProcessStartInfo info, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var (exitCode, output) = await RunAsync(info, timeout, cancellationToken);
        return exitCode == 0 ? output : throw new InvalidOperationException($"{Describe(info)} exited with {exitCode}:\n{output}");
    }

    /// <summary>Starts a long-running process whose output is appended to <paramref name="logFile"/>.</summary>
    public static Process StartLogged(ProcessStartInfo info, string logFile)
    {
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {info.FileName}");
        process.StandardInput.Close();
        var log = new StreamWriter(logFile, append: true) { AutoFlush = true };
        var gate = new Lock();
        var open = 2;
        void OnLine(string? line)
        {
            lock (gate)
            {
                if (line is not null)
                {
                    log.WriteLine(line);
                }
                else if (--open == 0)
                {
                    log.Dispose();
                }
            }
        }

        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static string Describe(ProcessStartInfo info) =>
        info.FileName == "runuser" ? string.Join(' ', info.ArgumentList.SkipWhile(a => a != "env").Skip(1).Where(a => !a.Contains('=', StringComparison.Ordinal))) : $"{info.FileName} {string.Join(' ', info.ArgumentList)}";
}
