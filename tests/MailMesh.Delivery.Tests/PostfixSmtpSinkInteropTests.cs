using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Storage;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// Interop with Postfix as the receiver: Delivery sends into Postfix's own <c>smtp-sink</c> (Debian package
/// "postfix", installed by ./test.sh) and the message it dumps must be the stored message.
/// </summary>
public sealed class PostfixSmtpSinkInteropTests
{
    private const string SmtpSinkPath = "/usr/sbin/smtp-sink";

    [Fact]
    public async Task Postfix_smtp_sink_receives_the_stored_bytes_with_DSN_and_8BITMIME()
    {
        await using var postfix = await PostfixSink.StartAsync();
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?> { ["Delivery:Port"] = postfix.Port.ToString() });
        f.Dns.AddMx("postfix.test", 10, "mx.postfix.test").AddAddress("mx.postfix.test", "127.0.0.1");
        var content = Encoding.UTF8.GetBytes(
            "From: sender@origin.test\r\nTo: rcpt@postfix.test\r\nSubject: interop caf\u00e9\r\n\r\n.leading dot\r\n..two\r\n.\r\nlast line\r\n");
        var stored = f.Store(f.Store(content, bodyType: BodyType.EightBitMime) with { Id = Guid.NewGuid(), EnvelopeId = "env 1", Ret = "HDRS" });
        var request = DeliveryFixture.Request(stored.Id, "postfix.test", "rcpt@postfix.test", "other@postfix.test");
        request = request with { Recipients = [request.Recipients[0] with { Notify = "SUCCESS,DELAY", OriginalRecipient = "rfc822;rcpt+x@postfix.test" }, request.Recipients[1]] };

        var attempt = await f.DeliverAsync(request);

        Assert.All(attempt.Results, r => Assert.True(r.Outcome == DeliveryOutcome.Delivered, $"{r.ReplyCode} {r.ReplyText}"));
        var dump = await postfix.WaitForDumpAsync();
        // smtp-sink announces no SIZE, so none is sent (RFC 1870 §4).
        Assert.Equal("<sender@origin.test> BODY=8BITMIME RET=HDRS ENVID=env+201", dump.Headers["X-Mail-Args"].Single());
        Assert.Equal(
            ["<rcpt@postfix.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;rcpt+2Bx@postfix.test", "<other@postfix.test>"],
            dump.Headers["X-Rcpt-Args"]);
        Assert.Equal("client.mailmesh.test", dump.Headers["X-Helo-Args"].Single());
        // smtp-sink writes lines with LF endings, after removing the dot-stuffing.
        Assert.Equal(Encoding.UTF8.GetString(content).Replace("\r\n", "\n", StringComparison.Ordinal), dump.Message);
    }

    [Fact]
    public async Task Postfix_smtp_sink_without_PIPELINING_DSN_and_8BITMIME()
    {
        await using var postfix = await PostfixSink.StartAsync("-p", "-N", "-8", "-E");
        await using var f = await DeliveryFixture.StartAsync(settings: new Dictionary<string, string?> { ["Delivery:Port"] = postfix.Port.ToString() });
        f.Dns.AddMx("postfix.test", 10, "mx.postfix.test").AddAddress("mx.postfix.test", "127.0.0.1");
        var content = Encoding.ASCII.GetBytes("Subject: plain\r\n\r\n.\r\n...\r\nend\r\n");
        var stored = f.Store(f.Store(content) with { Id = Guid.NewGuid(), EnvelopeId = "env", Ret = "FULL" });
        var request = DeliveryFixture.Request(stored.Id, "postfix.test", "rcpt@postfix.test");
        request = request with { Recipients = [request.Recipients[0] with { Notify = "NEVER" }] };

        var attempt = await f.DeliverAsync(request);

        var result = Assert.Single(attempt.Results);
        Assert.True(result.Outcome == DeliveryOutcome.Delivered, $"{result.ReplyCode} {result.ReplyText}");
        var dump = await postfix.WaitForDumpAsync();
        Assert.Equal("<sender@origin.test>", dump.Headers["X-Mail-Args"].Single());
        Assert.Equal("<rcpt@postfix.test>", dump.Headers["X-Rcpt-Args"].Single());
        Assert.Equal(Encoding.ASCII.GetString(content).Replace("\r\n", "\n", StringComparison.Ordinal), dump.Message);
    }

    /// <summary>One smtp-sink process on 127.0.0.1 dumping each transaction to its own file.</summary>
    private sealed class PostfixSink : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _directory;

        private PostfixSink(Process process, string directory, int port)
        {
            _process = process;
            _directory = directory;
            Port = port;
        }

        public int Port { get; }

        public static async Task<PostfixSink> StartAsync(params string[] flags)
        {
            if (OperatingSystem.IsWindows() || !File.Exists(SmtpSinkPath))
            {
                Assert.Fail($"Postfix's smtp-sink ({SmtpSinkPath}) is required for the interop tests: install the Debian package " +
                    "'postfix' (./test.sh does, through deploy/scripts/deps.sh with MAILMESH_TEST_TOOLS=1).");
            }

            var directory = Directory.CreateTempSubdirectory("mailmesh-smtp-sink-").FullName;
            // smtp-sink drops root privileges to -u's user, which must be able to write the dumps.
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(directory, (UnixFileMode)0x1FF);
            }
            for (var attempt = 0; ; attempt++)
            {
                var port = LoopbackPort.Free();
                var start = new ProcessStartInfo(SmtpSinkPath) { RedirectStandardError = true, RedirectStandardOutput = true };
                if (Environment.IsPrivilegedProcess)
                {
                    start.ArgumentList.Add("-u");
                    start.ArgumentList.Add("nobody");
                }

                foreach (var flag in flags)
                {
                    start.ArgumentList.Add(flag);
                }

                start.ArgumentList.Add("-h");
                start.ArgumentList.Add("mx.postfix.test");
                start.ArgumentList.Add("-d");
                start.ArgumentList.Add(Path.Combine(directory, "%M."));
                start.ArgumentList.Add($"127.0.0.1:{port}");
                start.ArgumentList.Add("16");
                var process = Process.Start(start)!;
                if (await ListeningAsync(process, port))
                {
                    return new PostfixSink(process, directory, port);
                }

                var error = process.HasExited ? await process.StandardError.ReadToEndAsync() : "not listening";
                process.Kill();
                process.Dispose();
                if (attempt == 3)
                {
                    Assert.Fail($"smtp-sink did not start: {error}");
                }
            }
        }

        /// <summary>Waits for the first complete dump (smtp-sink ends each with an empty line).</summary>
        public async Task<Dump> WaitForDumpAsync()
        {
            using var watcher = new FileSystemWatcher(_directory) { IncludeSubdirectories = true, EnableRaisingEvents = true };
            var deadline = DateTimeOffset.UtcNow.AddSeconds(10);
            while (true)
            {
                foreach (var file in Directory.EnumerateFiles(_directory, "*", SearchOption.AllDirectories))
                {
                    var text = await File.ReadAllTextAsync(file);
                    if (text.EndsWith("\n\n", StringComparison.Ordinal))
                    {
                        return Dump.Parse(text);
                    }
                }

                var remaining = deadline - DateTimeOffset.UtcNow;
                Assert.True(remaining > TimeSpan.Zero, "smtp-sink wrote no complete message dump in 10 s");

                // Wake on the next write to the dump directory (or re-check after a short while: the write may have
                // landed between the scan and the subscription).
                var changed = new TaskCompletionSource();
                void OnChanged(object sender, FileSystemEventArgs e) => changed.TrySetResult();
                watcher.Changed += OnChanged;
                watcher.Created += OnChanged;
                await Task.WhenAny(changed.Task, Task.Delay(TimeSpan.FromMilliseconds(200)));
                watcher.Changed -= OnChanged;
                watcher.Created -= OnChanged;
            }
        }

        private static async Task<bool> ListeningAsync(Process process, int port)
        {
            var deadline = DateTimeOffset.UtcNow.AddSeconds(10);
            while (DateTimeOffset.UtcNow < deadline && !process.HasExited)
            {
                using var client = new TcpClient();
                try
                {
                    await client.ConnectAsync(IPAddress.Loopback, port);
                    return true;
                }
                catch (SocketException)
                {
                    // Not bound yet; the readiness probe tries again.
                    await Task.Delay(50);
                }
            }

            return false;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>smtp-sink's dump: its X- headers and the message after its three-line Received header.</summary>
    private sealed record Dump(ILookup<string, string> Headers, string Message)
    {
        public static Dump Parse(string text)
        {
            var lines = text.Split('\n');
            var headers = new List<(string Name, string Value)>();
            var index = 0;
            while (!lines[index].StartsWith("Received:", StringComparison.Ordinal))
            {
                var colon = lines[index].IndexOf(':', StringComparison.Ordinal);
                headers.Add((lines[index][..colon], lines[index][(colon + 1)..].Trim()));
                index++;
            }

            // "Received: from ...", "\tby ... ;", "\tdate"; then the message and a final empty line.
            index += 3;
            var message = string.Join('\n', lines[index..]);
            return new Dump(headers.ToLookup(h => h.Name, h => h.Value), message[..^1]);
        }
    }
}
