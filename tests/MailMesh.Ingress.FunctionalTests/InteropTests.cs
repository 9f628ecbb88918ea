using System.Diagnostics;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// Real SMTP clients against the real host: swaks (STARTTLS + AUTH PLAIN), Python's smtplib (starttls, login,
/// send_message) and Postfix's smtp-source (parallel sessions). The tools are installed by ./test.sh; a missing tool is
/// a failure with the reason, never a skip.
/// </summary>
public sealed class InteropTests
{
    private static async Task<(int ExitCode, string Output)> RunAsync(string tool, string[] arguments, string? stdin = null)
    {
        var path = FindTool(tool);
        var start = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException(tool + " did not start");
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException(tool + " did not finish in 2 minutes: " + await output + await error);
        }

        return (process.ExitCode, await output + await error);
    }

    private static string FindTool(string tool)
    {
        var directories = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator)
            .Concat(["/usr/sbin", "/usr/local/sbin", "/sbin"]);
        foreach (var directory in directories)
        {
            var candidate = Path.Combine(directory, tool);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        Assert.Fail($"'{tool}' is not installed: the interop tests need it (./test.sh installs swaks, python3 and postfix's smtp-source).");
        return tool;
    }

    [Fact]
    public async Task Swaks_sends_with_STARTTLS_and_AUTH_PLAIN()
    {
        await using var host = await IngressHost.StartAsync(SmtpExtensionTests.TlsSettings());
        var (exit, output) = await RunAsync("swaks",
        [
            "--server", "127.0.0.1:" + host.SubmissionEndPoint.Port,
            "--tls", "--auth", "PLAIN", "--auth-user", SmtpExtensionTests.User, "--auth-password", SmtpExtensionTests.Password,
            "--from", "sender@example.com", "--to", "rcpt@example.org", "--helo", "client.test", "--timeout", "60",
        ]);
        Assert.True(exit == 0, "swaks failed: " + output);
        Assert.Contains("235 2.7.0", output, StringComparison.Ordinal);
        Assert.Single(host.Spool.Stored);
    }

    [Fact]
    public async Task Python_smtplib_sends_with_starttls_login_and_send_message()
    {
        await using var host = await IngressHost.StartAsync(SmtpExtensionTests.TlsSettings());
        var script = """
            import smtplib, ssl, sys
            from email.message import EmailMessage
            port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=60) as smtp:
                smtp.starttls(context=context)
                smtp.login(user, password)
                message = EmailMessage()
                message["From"] = "sender@example.com"
                message["To"] = "rcpt@example.org, other@example.net"
                message["Subject"] = "from smtplib"
                message.set_content("Grüße from Python\n")
                refused = smtp.send_message(message)
                assert not refused, refused
                smtp.sendmail("sender@example.com", ["third@example.org"], b"Subject: raw\r\n\r\nbody\r\n")
            print("sent")
            """;
        var (exit, output) = await RunAsync("python3", ["-c", script, host.SubmissionEndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), SmtpExtensionTests.User, SmtpExtensionTests.Password]);
        Assert.True(exit == 0, "python smtplib failed: " + output);
        Assert.Equal(2, host.Spool.Stored.Count);
    }

    [Fact]
    public async Task Postfix_smtp_source_delivers_twenty_messages_over_five_sessions()
    {
        await using var host = await IngressHost.StartAsync();
        var (exit, output) = await RunAsync("smtp-source",
            ["-s", "5", "-m", "20", "-f", "sender@example.com", "-t", "rcpt@example.org", "-M", "client.test", "127.0.0.1:" + host.SmtpEndPoint.Port]);
        Assert.True(exit == 0, "smtp-source failed: " + output);
        Assert.Equal(20, host.Spool.Stored.Count);
    }
}
