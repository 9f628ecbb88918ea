using System.Diagnostics;
using System.Globalization;

namespace MailMesh.LoadTool;

/// <summary>
/// Debian's smtp-source(1) (Postfix's load generator, written in C) as the client: <c>smtp-source -s connections -l
/// size -m messages -f load@sender.test -t user@load.test host:port</c>, plus <c>--smtp-source-args</c>. By default it
/// opens a new connection for every message (-d keeps one open) and sends one recipient per message. It prints nothing
/// per message, so the accept rate is messages ÷ its run time and there is no accept latency.
/// </summary>
internal static class SmtpSourceClient
{
    public static IReadOnlyList<string> Arguments(LoadOptions options, string host, int port, int messages) =>
    [
        "-s", options.Connections.ToString(CultureInfo.InvariantCulture),
        "-l", options.Size.ToString(CultureInfo.InvariantCulture),
        "-m", messages.ToString(CultureInfo.InvariantCulture),
        "-f", "load@sender.test",
        "-t", "user@load.test",
        .. options.SmtpSourceArguments.Split(' ', StringSplitOptions.RemoveEmptyEntries),
        $"{host}:{port.ToString(CultureInfo.InvariantCulture)}",
    ];

    /// <summary>Runs smtp-source to its end; true when it exited 0 (every message got its 250).</summary>
    public static async Task<(bool Succeeded, string Errors)> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo("/usr/sbin/smtp-source") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start smtp-source");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw;
        }

        await output;
        return (process.ExitCode == 0, (await errors).Trim());
    }
}
