using System.Diagnostics;
using System.Text;

namespace MailMesh.Mailbox.FunctionalTests;

/// <summary>Other real clients: Python's poplib and imaplib, and curl's pop3:// and imap://; bytes compared with the store.</summary>
public sealed class InteropTests
{
    private static readonly Dictionary<string, string?> Plaintext = new() { ["Mailbox:AllowPlaintextAuth"] = "true" };

    [Fact]
    public async Task Python_poplib_with_STLS_retrieves_the_stored_bytes_and_deletes()
    {
        await using var host = await MailboxHost.StartAsync();
        var stored = await host.DeliverAsync(Samples.Plain);
        const string Script = """
            import base64, poplib, ssl, sys
            context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
            pop = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=30)
            pop.stls(context)
            pop.user(sys.argv[3]); pop.pass_(sys.argv[4])
            count, size = pop.stat()
            response, lines, octets = pop.retr(1)
            print(count, size, octets)
            print(base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode())
            pop.dele(1)
            pop.quit()
            """;
        var output = await RunAsync("python3", ["-c", Script, "127.0.0.1", host.Pop3.Port.ToString(), MailboxHost.User, MailboxHost.Password]);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith($"1 {stored.Length} ", lines[0], StringComparison.Ordinal);
        Assert.Equal(stored, Convert.FromBase64String(lines[1]));
        var inbox = await host.Store.GetFolderAsync(host.Account.Id, "INBOX", default);
        Assert.Empty(await host.Store.ListMessagesAsync(host.Account.Id, inbox!.Id, 1, 10, default));
    }

    [Fact]
    public async Task Python_imaplib_with_STARTTLS_fetches_the_stored_bytes_and_stores_flags()
    {
        await using var host = await MailboxHost.StartAsync();
        var stored = await host.DeliverAsync(Samples.Multipart);
        const string Script = """
            import base64, imaplib, ssl, sys
            context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
            imap = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=30)
            imap.starttls(context)
            imap.login(sys.argv[3], sys.argv[4])
            typ, data = imap.select("INBOX")
            print(data[0].decode())
            typ, data = imap.uid("FETCH", "1", "(BODY.PEEK[])")
            print(base64.b64encode(data[0][1]).decode())
            typ, data = imap.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
            print(data[0].decode())
            typ, data = imap.search(None, "FLAGGED")
            print(data[0].decode())
            imap.logout()
            """;
        var output = await RunAsync("python3", ["-c", Script, "127.0.0.1", host.Imap.Port.ToString(), MailboxHost.User, MailboxHost.Password]);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("1", lines[0]);
        Assert.Equal(stored, Convert.FromBase64String(lines[1]));
        Assert.Equal("1 (FLAGS (\\Flagged) UID 1)", lines[2]);
        Assert.Equal("1", lines[3]);
    }

    [Fact]
    public async Task Curl_pop3_and_imap_retrieve_the_stored_bytes()
    {
        await using var host = await MailboxHost.StartAsync(Plaintext);
        var stored = await host.DeliverAsync(Samples.Plain);
        var credentials = MailboxHost.User + ":" + MailboxHost.Password;
        var pop3 = await RunAsync("curl", ["-s", "--max-time", "30", "-u", credentials, $"pop3://127.0.0.1:{host.Pop3.Port}/1"], binary: true);
        Assert.Equal(Encoding.Latin1.GetString(stored), pop3);
        var imap = await RunAsync("curl", ["-s", "--max-time", "30", "-u", credentials, $"imap://127.0.0.1:{host.Imap.Port}/INBOX;UID=1"], binary: true);
        Assert.Equal(Encoding.Latin1.GetString(stored), imap);

        // And over TLS: curl's --ssl-reqd makes it use STLS / STARTTLS.
        var pop3Tls = await RunAsync("curl", ["-s", "-k", "--ssl-reqd", "--max-time", "30", "-u", credentials, $"pop3://127.0.0.1:{host.Pop3.Port}/1"], binary: true);
        Assert.Equal(Encoding.Latin1.GetString(stored), pop3Tls);
        var tls = await RunAsync("curl", ["-s", "-k", "--ssl-reqd", "--max-time", "30", "-u", credentials, $"imap://127.0.0.1:{host.Imap.Port}/INBOX;UID=1"], binary: true);
        Assert.Equal(Encoding.Latin1.GetString(stored), tls);
    }

    private static async Task<string> RunAsync(string file, string[] arguments, bool binary = false)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = binary ? Encoding.Latin1 : Encoding.UTF8,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"{file} exited with {process.ExitCode}: {await error}");
        return await output;
    }
}
