using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.LoadTool;

/// <summary>
/// <c>--memory-scenario idle|large|stall|all</c> (issue 7 §3): the resident set size (VmRSS, Linux) of a Standalone
/// process while SMTP clients
///   idle   hold 1,000 sessions open after EHLO;
///   large  send 50 messages of 35 MB at once (a client answered 452 4.3.1 by the memory budget tries again after
///          200 ms, as an MTA would later);
///   stall  declare SIZE=35 MB, get the 354 and send nothing (50 sessions);
///   json   POST 50 JSON submissions at once to the HTTP API, each with one base64 attachment sized so the composed
///          message is just under 35 MB (a 503 from the memory budget is retried after 200 ms);
///   delivered  as large, but addressed to an address literal (no DNS) whose port is a built-in sink, so Delivery
///          streams every 35 MB message from the spool and sends it on; the run ends when the sink has them all.
/// Prints the baseline, the peak while the scenario runs and the value when it is over, plus the SMTP outcomes.
/// Except in delivered, Delivery is pointed at a DNS server address where nothing listens, so accepted mail is
/// deferred (a temporary DNS failure), not delivered or bounced, during the run.
/// </summary>
internal static class MemoryScenario
{
    public static async Task<int> RunAsync(LoadOptions options, string scenario)
    {
        var scenarios = scenario == "all" ? ["idle", "large", "stall", "json", "delivered"] : new[] { scenario };
        if (options.Target == "distributed")
        {
            // The HTTP API of the distributed Ingress needs an API key in its environment; json runs on Standalone only.
            scenarios = [.. scenarios.Where(s => s != "json")];
        }

        if (scenarios.Any(s => s is not ("idle" or "large" or "stall" or "json" or "delivered")))
        {
            throw new ArgumentException("--memory-scenario is idle, large, stall, json, delivered or all");
        }

        var failed = false;
        foreach (var name in scenarios)
        {
            // A fresh process per scenario, so one's garbage does not count against the next.
            await using var sink = name == "delivered" ? new CountingSink(IPAddress.Loopback, 0) : null;
            var dns = new IPEndPoint(IPAddress.Loopback, LoopbackPort.Free());
            await using var target = options.Target == "distributed"
                ? await StandaloneProcess.StartDistributedAsync(options, dns, sink?.Port)
                : await StandaloneProcess.StartAsync(options, dns, sink?.Port);
            await Task.Delay(TimeSpan.FromSeconds(2));
            var baseline = target.ResidentBytes();
            Console.WriteLine($"memory: scenario {name}, {target.Name} pid {target.Pid}, Ingress:MaxBufferedBytes {options.MemoryBudget?.ToString(CultureInfo.InvariantCulture) ?? "default"}, baseline RSS {Mib(baseline)}");
            using var sampler = new Sampler(target);
            var outcome = name switch
            {
                "idle" => await IdleAsync(target, options.MemorySessions ?? 1000, sampler),
                "large" => await LargeAsync(target, options.MemorySessions ?? 50, options.MemoryMessageSize, sampler),
                "delivered" => await DeliveredAsync(target, sink!, options.MemorySessions ?? 50, options.MemoryMessageSize, sampler),
                "json" => await JsonAsync(target, options.MemorySessions ?? 50, options.MemoryMessageSize),
                _ => await StallAsync(target, options.MemorySessions ?? 50, options.MemoryMessageSize, sampler),
            };
            await Task.Delay(TimeSpan.FromSeconds(1));
            var after = target.ResidentBytes();
            Console.WriteLine($"{name,-6} sessions {outcome.Sessions,5}  RSS baseline {Mib(baseline)}  peak {Mib(sampler.Peak)}  (+{Mib(sampler.Peak - baseline)})  after {Mib(after)}  {outcome.Detail}");
            failed |= !outcome.Ok;
        }

        return failed ? 1 : 0;
    }

    private static string Mib(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture) + " MiB";

    private static async Task<Outcome> IdleAsync(StandaloneProcess target, int sessions, Sampler sampler)
    {
        var clients = new List<Client>(sessions);
        try
        {
            for (var i = 0; i < sessions; i++)
            {
                var client = await Client.ConnectAsync(target.Port);
                await client.CommandAsync("EHLO idle.test", "250");
                clients.Add(client);
            }

            await sampler.HoldAsync(TimeSpan.FromSeconds(5));
            return new Outcome(sessions, true, $"{clients.Count} sessions open after EHLO");
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    private static async Task<Outcome> StallAsync(StandaloneProcess target, int sessions, int size, Sampler sampler)
    {
        var clients = new List<Client>(sessions);
        try
        {
            for (var i = 0; i < sessions; i++)
            {
                var client = await Client.ConnectAsync(target.Port);
                await client.CommandAsync("EHLO stall.test", "250");
                await client.CommandAsync($"MAIL FROM:<stall@sender.test> SIZE={size}", "250");
                await client.CommandAsync($"RCPT TO:<user{i}@load.test>", "250");
                await client.CommandAsync("DATA", "354");
                clients.Add(client);
            }

            await sampler.HoldAsync(TimeSpan.FromSeconds(5));
            return new Outcome(sessions, true, $"{clients.Count} sessions got 354 after SIZE={size} and send nothing");
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    /// <summary><see cref="LargeAsync"/> to <c>[127.0.0.1]</c>, then until the sink has every message (at most 10 minutes).</summary>
    private static async Task<Outcome> DeliveredAsync(StandaloneProcess target, CountingSink sink, int sessions, int size, Sampler sampler)
    {
        var started = Stopwatch.GetTimestamp();
        var accepted = await LargeAsync(target, sessions, size, sampler, "[127.0.0.1]");
        var deadline = Stopwatch.GetTimestamp() + (Stopwatch.Frequency * 600);
        while (sink.UniqueMessages < sessions && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(250);
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        return new Outcome(
            sessions,
            accepted.Ok && sink.UniqueMessages == sessions,
            $"{accepted.Detail}; the sink received {sink.UniqueMessages} of them ({sink.Messages} transfers) {seconds:F1} s after the first was sent");
    }

    private static async Task<Outcome> LargeAsync(StandaloneProcess target, int sessions, int size, Sampler sampler, string domain = "load.test")
    {
        var body = SmtpLoadClient.BuildBody(size);
        var refusals = 0;
        var started = Stopwatch.GetTimestamp();
        var lost = 0;
        var results = await Task.WhenAll(Enumerable.Range(0, sessions).Select(i => Task.Run(async () =>
        {
            try
            {
                return await SendLargeAsync(i);
            }
            catch (IOException)
            {
                // The server closed the session (421) or died: counted, not retried.
                Interlocked.Increment(ref lost);
                return false;
            }
        })));

        async Task<bool> SendLargeAsync(int i)
        {
            using var client = await Client.ConnectAsync(target.Port);
            await client.CommandAsync("EHLO large.test", "250");
            while (true)
            {
                var mail = await client.CommandAsync($"MAIL FROM:<large@sender.test> SIZE={body.Length}", null);
                if (mail.StartsWith("452", StringComparison.Ordinal))
                {
                    // RFC 1870 §6.2 / RFC 3463 4.3.1: the server is full now; try again later.
                    Interlocked.Increment(ref refusals);
                    await Task.Delay(200);
                    continue;
                }

                await client.CommandAsync($"RCPT TO:<user{i}@{domain}>", "250");
                var data = await client.CommandAsync("DATA", null);
                if (data.StartsWith("452", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref refusals);
                    await client.CommandAsync("RSET", "250");
                    await Task.Delay(200);
                    continue;
                }

                await client.SendAsync(Encoding.ASCII.GetBytes("Subject: large " + i + "\r\n"));
                await client.SendAsync(body);
                var final = await client.ReadReplyAsync();
                if (final.StartsWith("452", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref refusals);
                    await Task.Delay(200);
                    continue;
                }

                return final.StartsWith("250", StringComparison.Ordinal);
            }
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var accepted = results.Count(r => r);
        return new Outcome(
            sessions,
            accepted == sessions,
            $"{accepted} x {body.Length} octets accepted in {seconds:F1} s; {refusals} answers 452 4.3.1 (budget full) retried after 200 ms; {lost} sessions lost");
    }

    /// <summary>
    /// Concurrent JSON submissions with one attachment each, sized so the composed message (base64 in 76-column lines)
    /// stays just under <paramref name="size"/>; a 503 (memory budget) is retried after 200 ms.
    /// </summary>
    private static async Task<Outcome> JsonAsync(StandaloneProcess target, int sessions, int size)
    {
        var attachment = new byte[(size / 4 * 3) - 600_000];
        new Random(3).NextBytes(attachment);
        var json = Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new
        {
            from = "json@sender.test",
            to = new[] { "user@load.test" },
            subject = "json load",
            text = "See the attachment.",
            attachments = new[] { new { filename = "load.bin", contentType = "application/octet-stream", content = Convert.ToBase64String(attachment) } },
        }));
        attachment = [];
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{target.HttpPort}"), Timeout = TimeSpan.FromMinutes(10) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", StandaloneProcess.ApiKey);

        // RFC 9110 §10.1.1: the body goes out only after 100 Continue, so a 503 (or 413) answered before Ingress reads it
        // arrives as an answer instead of a reset while 35 MB are still being sent.
        http.DefaultRequestHeaders.ExpectContinue = true;
        var resets = 0;
        var refusals = 0;
        var failures = 0;
        var started = Stopwatch.GetTimestamp();
        var results = await Task.WhenAll(Enumerable.Range(0, sessions).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var content = new ByteArrayContent(json);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                HttpResponseMessage response;
                try
                {
                    response = await http.PostAsync("/api/v1/messages", content);
                }
                catch (HttpRequestException)
                {
                    // The server answered and closed while the body was still being sent: tried again like a 503.
                    Interlocked.Increment(ref resets);
                    await Task.Delay(200);
                    continue;
                }

                using var answer = response;
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    Interlocked.Increment(ref refusals);
                    await Task.Delay(200);
                    continue;
                }

                if (response.StatusCode != HttpStatusCode.Accepted)
                {
                    Interlocked.Increment(ref failures);
                    Console.Error.WriteLine($"json: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }

                return response.StatusCode == HttpStatusCode.Accepted;
            }
        })));
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var accepted = results.Count(r => r);
        return new Outcome(
            sessions,
            accepted == sessions,
            $"{accepted} x {json.Length} octets of JSON accepted in {seconds:F1} s; {refusals} answers 503 (budget full) and {resets} connections closed mid-body retried after 200 ms; {failures} other answers");
    }

    private sealed record Outcome(int Sessions, bool Ok, string Detail);

    /// <summary>Samples VmRSS every 50 ms until disposed; <see cref="Peak"/> is the largest seen (and VmHWM).</summary>
    private sealed class Sampler : IDisposable
    {
        private readonly StandaloneProcess _target;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private long _peak;

        public Sampler(StandaloneProcess target)
        {
            _target = target;
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    Sample();
                    try
                    {
                        await Task.Delay(50, _stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
            });
        }

        public long Peak
        {
            get
            {
                Sample();
                return Math.Max(Interlocked.Read(ref _peak), _target.PeakResidentBytes());
            }
        }

        /// <summary>Keeps the scenario's sessions as they are for a while, sampling.</summary>
        public Task HoldAsync(TimeSpan time) => Task.Delay(time);

        public void Dispose()
        {
            _stop.Cancel();
            _loop.Wait();
            _stop.Dispose();
        }

        private void Sample()
        {
            var rss = _target.ResidentBytes();
            long current;
            while ((current = Interlocked.Read(ref _peak)) < rss && Interlocked.CompareExchange(ref _peak, rss, current) != current)
            {
            }
        }
    }

    /// <summary>
    /// The process measured: a Standalone process listening on a free loopback port, or (<c>--target distributed</c>) the
    /// Ingress process of the distributed services (run-distributed.sh, on the test PostgreSQL and RabbitMQ), with
    /// connection limits raised for the scenario.
    /// </summary>
    private sealed class StandaloneProcess : IAsyncDisposable
    {
        private readonly Func<ValueTask> _stop;

        /// <summary>The HTTP API key the process is configured with (its SHA-256 in Ingress:Api:Keys).</summary>
        public const string ApiKey = "mm_load_0123456789abcdef0123456789abcdef";

        private StandaloneProcess(int pid, string name, int port, int httpPort, Func<ValueTask> stop)
        {
            Pid = pid;
            Name = name;
            _stop = stop;
            Port = port;
            HttpPort = httpPort;
        }

        public int Port { get; }

        public int HttpPort { get; }

        public int Pid { get; }

        /// <summary>What is measured: "Standalone" or "distributed Ingress".</summary>
        public string Name { get; }

        /// <summary>The distributed services; the Ingress process is the one measured.</summary>
        public static async Task<StandaloneProcess> StartDistributedAsync(LoadOptions options, IPEndPoint dns, int? deliveryPort)
        {
            var target = await Target.StartAsync(options, dns, deliveryPort ?? 25, ScenarioSettings());
            var ingress = target.Processes.Single(p => p.Name == "ingress").Pid;
            return new StandaloneProcess(ingress, "distributed Ingress", target.Port, 0, () => target.DisposeAsync());
        }

        /// <summary>Limits raised so the scenario's sessions all get in.</summary>
        private static Dictionary<string, string> ScenarioSettings() => new()
        {
            ["Ingress__MaxConnections"] = "5000",
            ["Ingress__MaxConnectionsPerIp"] = "5000",
            ["Policy__ConnectionsPerMinutePerIp"] = "1000000",
            ["Policy__MessagesPerMinutePerIp"] = "1000000",
        };

        /// <param name="deliveryPort">Where Delivery connects (an address literal's port); null for the default.</param>
        public static async Task<StandaloneProcess> StartAsync(LoadOptions options, IPEndPoint dns, int? deliveryPort = null)
        {
            var port = LoopbackPort.Free();
            var httpPort = LoopbackPort.Free();
            var data = Directory.CreateTempSubdirectory("mailmesh-memory-");
            var info = new ProcessStartInfo("dotnet", Path.Combine(options.RepositoryRoot, "services/MailMesh.Standalone/bin/Release/net10.0/MailMesh.Standalone.dll"))
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            var environment = new Dictionary<string, string>
            {
                ["Ingress__Listen"] = $"127.0.0.1:{port}",
                ["Ingress__MaxConnections"] = "5000",
                ["Ingress__MaxConnectionsPerIp"] = "5000",
                ["Urls"] = $"http://127.0.0.1:{httpPort}",
                ["Ingress__Api__Keys__0__Name"] = "load",
                ["Ingress__Api__Keys__0__Hash"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(ApiKey))),
                ["Storage__SqlitePath"] = Path.Combine(data.FullName, "mailmesh.db"),
                ["Dns__Servers"] = dns.ToString(),
                ["Policy__ConnectionsPerMinutePerIp"] = "1000000",
                ["Policy__MessagesPerMinutePerIp"] = "1000000",
                ["Logging__LogLevel__Default"] = "Warning",
                ["Logging__Console__FormatterName"] = "systemd", // one line per entry, forwarded below
            };
            if (deliveryPort is { } sinkPort)
            {
                environment["Delivery__Port"] = sinkPort.ToString(CultureInfo.InvariantCulture);
            }

            if (options.MemoryBudget is { } budget)
            {
                environment["Ingress__MaxBufferedBytes"] = budget.ToString(CultureInfo.InvariantCulture);
            }

            foreach (var (key, value) in environment)
            {
                info.Environment[key] = value;
            }

            var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the Standalone process");
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    Console.Error.WriteLine("target: " + e.Data);
                }
            };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    Console.Error.WriteLine("target: " + e.Data);
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            for (var i = 0; ; i++)
            {
                if (process.HasExited || i == 600)
                {
                    throw new InvalidOperationException("the Standalone process did not start listening");
                }

                try
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, port);
                    break;
                }
                catch (SocketException)
                {
                    await Task.Delay(100);
                }
            }

            return new StandaloneProcess(process.Id, "Standalone", port, httpPort, async () =>
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                process.Dispose();
                data.Delete(recursive: true);
            });
        }

        /// <summary>VmRSS of the process (Linux /proc), in bytes.</summary>
        public long ResidentBytes() => Status("VmRSS:");

        /// <summary>VmHWM: the largest VmRSS the process has had.</summary>
        public long PeakResidentBytes() => Status("VmHWM:");

        private long Status(string field)
        {
            try
            {
                foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
                {
                    if (line.StartsWith(field, StringComparison.Ordinal))
                    {
                        var kb = line[field.Length..].Trim().Split(' ')[0];
                        return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
                    }
                }
            }
            catch (IOException)
            {
            }

            return 0;
        }

        public ValueTask DisposeAsync() => _stop();
    }

    /// <summary>A minimal SMTP client for the scenarios: one command, one reply.</summary>
    private sealed class Client : IDisposable
    {
        private readonly TcpClient _tcp;
        private readonly NetworkStream _stream;
        private readonly LineReader _reader;

        private Client(TcpClient tcp)
        {
            _tcp = tcp;
            _stream = tcp.GetStream();
            _reader = new LineReader(_stream);
        }

        public static async Task<Client> ConnectAsync(int port)
        {
            var tcp = new TcpClient { NoDelay = true };
            await tcp.ConnectAsync(IPAddress.Loopback, port);
            var client = new Client(tcp);
            var greeting = await client.ReadReplyAsync();
            if (!greeting.StartsWith("220", StringComparison.Ordinal))
            {
                throw new IOException("expected 220, got: " + greeting);
            }

            return client;
        }

        public async Task<string> CommandAsync(string line, string? expect)
        {
            await SendAsync(Encoding.ASCII.GetBytes(line + "\r\n"));
            var reply = await ReadReplyAsync();
            if (expect is not null && !reply.StartsWith(expect, StringComparison.Ordinal))
            {
                throw new IOException($"{line}: expected {expect}, got: {reply}");
            }

            return reply;
        }

        public async Task SendAsync(byte[] bytes) => await _stream.WriteAsync(bytes);

        /// <summary>Reads one (possibly multi-line) reply and returns its last line.</summary>
        public async Task<string> ReadReplyAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            while (true)
            {
                var line = await _reader.ReadLineAsync(timeout.Token) ?? throw new IOException("connection closed");
                if (line.Length < 4 || line[3] != '-')
                {
                    return line;
                }
            }
        }

        public void Dispose() => _tcp.Dispose();
    }
}
