using System.Diagnostics;
using System.Text;

namespace MailMesh.Testing.Postfix;

/// <summary>
/// Runs Postfix's command-line tools (postmulti, postconf, postqueue, postmap, sendmail) and serializes the
/// commands that rewrite the default instance's main.cf (<c>postmulti -e ...</c> edits
/// <c>multi_instance_directories</c> there) across threads and test processes.
/// </summary>
internal static class PostfixTools
{
    public const string CommandDirectory = "/usr/sbin";

    private static readonly SemaphoreSlim ProcessGate = new(1, 1);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    public static string Tool(string name) => Path.Combine(CommandDirectory, name);

    /// <summary>Fails (never skips) with the reason when Postfix cannot be used on this machine.</summary>
    public static void EnsureAvailable()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new InvalidOperationException("The Postfix interop tests run on Linux only (Postfix multi-instance via postmulti).");
        }

        foreach (var tool in new[] { "postmulti", "postconf", "postfix", "postqueue", "postmap", "sendmail" })
        {
            if (!File.Exists(Tool(tool)))
            {
                throw new InvalidOperationException(
                    $"Postfix is not installed ({Tool(tool)} is missing): the Postfix interop tests need the Debian package " +
                    "'postfix' (./test.sh installs it through deploy/scripts/deps.sh with MAILMESH_TEST_TOOLS=1).");
            }
        }

        if (!Environment.IsPrivilegedProcess)
        {
            throw new InvalidOperationException(
                "The Postfix interop tests must run as root: postmulti creates instances under /etc and /var/spool.");
        }
    }

    /// <summary>Runs a tool; a non-zero exit is an exception carrying its output.</summary>
    public static async Task<string> RunAsync(string tool, IEnumerable<string> arguments, byte[]? standardInput = null)
    {
        var (exitCode, output) = await TryRunAsync(tool, arguments, standardInput);
        return exitCode == 0
            ? output
            : throw new InvalidOperationException($"{tool} {string.Join(' ', arguments)} exited with {exitCode}: {output.Trim()}");
    }

    /// <summary>Runs a tool and returns its exit code with standard output and error combined.</summary>
    public static async Task<(int ExitCode, string Output)> TryRunAsync(string tool, IEnumerable<string> arguments, byte[]? standardInput = null)
    {
        var start = new ProcessStartInfo(Tool(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = standardInput is not null,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException(tool + " did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (standardInput is not null)
        {
            await process.StandardInput.BaseStream.WriteAsync(standardInput);
            process.StandardInput.Close();
        }

        using var timeout = new CancellationTokenSource(CommandTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', start.ArgumentList)} did not finish in {CommandTimeout.TotalSeconds} s");
        }

        return (process.ExitCode, new StringBuilder(await output).Append(await error).ToString());
    }

    /// <summary>
    /// Holds the lock for commands that rewrite the default instance's main.cf: a semaphore within this process and
    /// an exclusive file lock (flock, taken by FileShare.None) across processes, e.g. two test projects at once.
    /// </summary>
    public static async Task<IAsyncDisposable> LockDefaultInstanceAsync()
    {
        await ProcessGate.WaitAsync();
        var path = Path.Combine(Path.GetTempPath(), "mailmesh-postmulti.lock");
        var deadline = DateTimeOffset.UtcNow.AddSeconds(60);
        using var retry = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        while (true)
        {
            try
            {
                var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                return new Held(file);
            }
            catch (IOException) when (DateTimeOffset.UtcNow < deadline)
            {
                // Another test process holds it; it is released within one postmulti command.
                await retry.WaitForNextTickAsync();
            }
            catch
            {
                ProcessGate.Release();
                throw;
            }
        }
    }

    private sealed class Held(FileStream file) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await file.DisposeAsync();
            ProcessGate.Release();
        }
    }
}
