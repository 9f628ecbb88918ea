using System.Diagnostics;
using System.Globalization;

namespace MailMesh.Chaos;

/// <summary>
/// A run whose own process was killed (SIGKILL, a test host killed by a hang timeout) cannot clean up after itself:
/// its PostgreSQL cluster, RabbitMQ node and services keep running. The next run finds its work directory
/// (<c>mailmesh-chaos-&lt;pid&gt;-…</c> in the temp directory, whose pid no longer runs) and stops what it left behind,
/// by the process ids the run wrote down.
/// </summary>
internal static class StaleRuns
{
    public const string Prefix = "mailmesh-chaos-";

    public static async Task ReapAsync(Action<string> log)
    {
        foreach (var directory in Directory.GetDirectories(Path.GetTempPath(), Prefix + "*"))
        {
            var parts = Path.GetFileName(directory)[Prefix.Length..].Split('-');
            if (!int.TryParse(parts[0], CultureInfo.InvariantCulture, out var owner) || IsRunning(owner, out _))
            {
                continue;
            }

            var logs = Path.Combine(directory, "logs");
            foreach (var pidFile in (Directory.Exists(logs) ? Directory.GetFiles(logs, "*.pid") : []).Append(Path.Combine(directory, "rabbitmq", "beam.pid")))
            {
                if (ReadPid(pidFile) is { } pid && IsRunning(pid, out var process) && (process.ProcessName.Contains("dotnet", StringComparison.Ordinal) || process.ProcessName.Contains("beam", StringComparison.Ordinal)))
                {
                    process.Kill(entireProcessTree: true);
                }
            }

            // SIGQUIT to the postmaster is PostgreSQL's immediate shutdown (pg_ctl stop -m immediate).
            if (ReadPid(Path.Combine(directory, "postgres", "data", "postmaster.pid")) is { } postmaster && IsRunning(postmaster, out var pg) && pg.ProcessName.Contains("postgres", StringComparison.Ordinal))
            {
                await OsCommand.RunAsync(OsCommand.Info(null, "kill", ["-QUIT", postmaster.ToString(CultureInfo.InvariantCulture)]), TimeSpan.FromSeconds(10));
                pg.WaitForExit(TimeSpan.FromSeconds(20));
            }

            if (File.Exists(Path.Combine(directory, "rabbitmq", "epmd-port")))
            {
                var port = (await File.ReadAllTextAsync(Path.Combine(directory, "rabbitmq", "epmd-port"))).Trim();
                await OsCommand.RunAsync(OsCommand.Info(null, "epmd", ["-port", port, "-kill"], new Dictionary<string, string> { ["ERL_EPMD_PORT"] = port }), TimeSpan.FromSeconds(15));
            }

            try
            {
                Directory.Delete(directory, recursive: true);
                log($"chaos: cleaned up after an earlier run that did not finish ({directory})");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                log($"chaos: could not delete {directory} left by an earlier run: {ex.Message}");
            }
        }
    }

    private static int? ReadPid(string file)
    {
        try
        {
            return File.Exists(file) && int.TryParse(File.ReadLines(file).FirstOrDefault()?.Trim(), CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static bool IsRunning(int pid, out Process process)
    {
        try
        {
            process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            process = null!;
            return false;
        }
    }
}
