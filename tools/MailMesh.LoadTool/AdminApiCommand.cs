using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using MailMesh.Storage;
using MailMesh.Testing.Infrastructure;
using MailMesh.Testing.Postgres;
using Npgsql;

namespace MailMesh.LoadTool;

/// <summary>
/// <c>--admin-api</c>: the admin API at scale (issue 12). Seeds a PostgreSQL spool with N messages
/// (<see cref="AdminApiSpool"/>), starts Standalone on it (Storage:Provider=postgres, in-memory bus: the Queue's admin
/// endpoints over the same store the distributed Queue uses), and times over HTTP the calls the Admin UI and the CLI
/// make: the queue summary, message search with each filter, a deep cursor page, message detail. Prints p50/p99 per
/// call. Exit 0: every call answered 200; 1: a call failed; 2: the run could not be carried out; 64: bad options.
/// </summary>
internal static class AdminApiCommand
{
    private sealed record Options
    {
        public int Messages { get; init; } = 1_000_000;
        public string? Spool { get; init; }
        public bool Sqlite { get; init; }
        public bool Keep { get; init; }
        public int Repeat { get; init; } = 20;
        public string RepositoryRoot { get; init; } = new LoadOptions().RepositoryRoot;

        public static Options Parse(string[] args)
        {
            var options = new Options();
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                options = args[i] switch
                {
                    "--admin-api" => options,
                    "--messages" => options with { Messages = int.Parse(Next(), CultureInfo.InvariantCulture) },
                    "--spool" => options with { Spool = Next() },
                    "--keep" => options with { Keep = true },
                    "--repeat" => options with { Repeat = int.Parse(Next(), CultureInfo.InvariantCulture) },
                    "--root" => options with { RepositoryRoot = Path.GetFullPath(Next()) },
                    "--provider" => options with
                    {
                        Sqlite = Next() switch
                        {
                            "sqlite" => true,
                            "postgres" => false,
                            var other => throw new ArgumentException($"--provider must be postgres or sqlite (was {other})"),
                        },
                    },
                    _ => throw new ArgumentException($"unknown option {args[i]} (with --admin-api: --messages, --spool, --keep, --repeat, --root, --provider)"),
                };
            }

            if (options.Messages < 1000 || options.Repeat < 1)
            {
                throw new ArgumentException("--messages must be at least 1000 and --repeat at least 1");
            }

            return options;
        }
    }

    public static async Task<int> RunAsync(string[] args)
    {
        Options options;
        try
        {
            options = Options.Parse(args);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or OverflowException)
        {
            await Console.Error.WriteLineAsync($"admin-api: {ex.Message} (tools/MailMesh.LoadTool/README.md)");
            return 64;
        }

        TestDatabase? database = null;
        string? privateFile = null;
        try
        {
            string connectionString;
            if (options.Spool is { } given)
            {
                connectionString = given;
            }
            else if (options.Sqlite)
            {
                privateFile = connectionString = Path.Combine(Path.GetTempPath(), "mailmesh-admin-" + Guid.NewGuid().ToString("N")[..8], "spool.db");
                Console.WriteLine($"admin-api: private SQLite spool {privateFile}{(options.Keep ? " (kept: --provider sqlite --spool " + privateFile + " measures it again)" : "")}");
            }
            else
            {
                database = await TestDatabase.CreateAsync("mailmesh_admin");
                connectionString = database.ConnectionString;
                Console.WriteLine($"admin-api: private database {database.Name}{(options.Keep ? " (kept: --spool \"" + connectionString + "\" measures it again)" : "")}");
            }

            var now = DateTimeOffset.UtcNow;
            var count = options.Sqlite
                ? await AdminApiSqliteSpool.PrepareAsync(connectionString, options.Messages, now, Console.Out)
                : await AdminApiSpool.PrepareAsync(connectionString, options.Messages, now, Console.Out);
            var samples = options.Sqlite ? await Samples.ReadSqliteAsync(connectionString) : await Samples.ReadAsync(connectionString);
            var calls = Calls(samples);
            var load = LoadAverage();
            var results = await MeasureAsync(options, connectionString, calls);
            var provider = options.Sqlite ? "SQLite" : "PostgreSQL";
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Admin API over HTTP, {count:N0} messages ({samples.Recipients:N0} recipients, {samples.Pending:N0} pending) in {provider}, Standalone on {provider}; {options.Repeat} timed calls each after 2 untimed; load average {load} -> {LoadAverage()} ({Environment.ProcessorCount} cores)"));
            Console.WriteLine();
            Console.WriteLine("| call | request | p50 ms | p99 ms | max ms | answer |");
            Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
            foreach (var r in results)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {r.Name} | `{r.Path}` | {r.P50:F1} | {r.P99:F1} | {r.Max:F1} | {r.Answer} |"));
            }

            return results.All(r => r.Failed == 0) ? 0 : 1;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            await Console.Error.WriteLineAsync("admin-api: the run could not be carried out: " + ex);
            return 2;
        }
        finally
        {
            if (database is not null && !options.Keep)
            {
                await database.DisposeAsync();
            }

            if (privateFile is not null && !options.Keep)
            {
                Directory.Delete(Path.GetDirectoryName(privateFile)!, recursive: true);
            }
        }
    }

    private sealed record Call(string Name, string Path, Func<JsonElement, string> Describe);

    private sealed record Result(string Name, string Path, double P50, double P99, double Max, string Answer, int Failed);

    /// <summary>Real values to search for, read from the seeded spool.</summary>
    private sealed record Samples(string Sender, string Recipient, string BigDomain, string SmallDomain, DateTimeOffset Middle, MessageCursor Deep,
        Guid DeferredMessage, Guid DeliveredMessage, long Recipients, long Pending)
    {
        public static async Task<Samples> ReadAsync(string connectionString)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            async Task<NpgsqlDataReader> Row(string sql)
            {
                var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
                var reader = await command.ExecuteReaderAsync();
                if (!await reader.ReadAsync())
                {
                    throw new InvalidOperationException("the spool has no row for: " + sql);
                }

                return reader;
            }

            DateTimeOffset middle;
            MessageCursor deep;
            long recipients, pending;
            var sender = await AdminApiSpool.ScalarAsync<string>(connection, "SELECT sender FROM spool.messages ORDER BY received_at DESC LIMIT 1 OFFSET 777");
            var recipient = await AdminApiSpool.ScalarAsync<string>(connection, "SELECT address FROM spool.recipients ORDER BY id DESC LIMIT 1 OFFSET 4242");

            // The largest domain, and one of the smallest (a handful of recipients): each filter's easy and hard case.
            var big = await AdminApiSpool.ScalarAsync<string>(connection, "SELECT domain FROM spool.recipients GROUP BY domain ORDER BY count(*) DESC, domain LIMIT 1");
            var small = await AdminApiSpool.ScalarAsync<string>(connection, "SELECT domain FROM spool.recipients GROUP BY domain ORDER BY count(*), domain LIMIT 1");
            var deferred = await AdminApiSpool.ScalarAsync<Guid>(connection, "SELECT message_id FROM spool.recipients WHERE state = 2 ORDER BY id DESC LIMIT 1 OFFSET 100");
            var delivered = await AdminApiSpool.ScalarAsync<Guid>(connection, "SELECT message_id FROM spool.recipients WHERE state = 3 ORDER BY id LIMIT 1 OFFSET 1000");

            // Half-way down the newest-first list: a cursor as deep as the list gets (500,000 messages at a million).
            await using (var r = await Row("SELECT received_at, id FROM spool.messages ORDER BY received_at DESC, id DESC LIMIT 1 OFFSET (SELECT count(*) / 2 FROM spool.messages)"))
            {
                middle = r.GetFieldValue<DateTimeOffset>(0);
                deep = new MessageCursor(middle, r.GetGuid(1));
            }

            await using (var r = await Row("SELECT count(*), count(*) FILTER (WHERE state IN (0, 1, 2, 7)) FROM spool.recipients"))
            {
                recipients = r.GetInt64(0);
                pending = r.GetInt64(1);
            }

            return new Samples(sender, recipient, big, small, middle, deep, deferred, delivered, recipients, pending);
        }

        /// <summary>The same samples from a SQLite spool (ids as blobs, times as unix milliseconds).</summary>
        public static async Task<Samples> ReadSqliteAsync(string path)
        {
            await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Mode=ReadOnly;Pooling=False");
            await connection.OpenAsync();
            async Task<object[]> Row(string sql)
            {
                await using var command = new Microsoft.Data.Sqlite.SqliteCommand(sql, connection) { CommandTimeout = 0 };
                await using var reader = await command.ExecuteReaderAsync();
                if (!await reader.ReadAsync())
                {
                    throw new InvalidOperationException("the spool has no row for: " + sql);
                }

                var values = new object[reader.FieldCount];
                reader.GetValues(values);
                return values;
            }

            static Guid Id(object value) => value is byte[] bytes ? new Guid(bytes) : Guid.Parse((string)value, CultureInfo.InvariantCulture);
            var sender = (string)(await Row("SELECT sender FROM spool_messages ORDER BY received_at DESC, id DESC LIMIT 1 OFFSET 777"))[0];
            var recipient = (string)(await Row("SELECT address FROM spool_recipients ORDER BY id DESC LIMIT 1 OFFSET 4242"))[0];
            var big = (string)(await Row("SELECT domain FROM spool_recipients GROUP BY domain ORDER BY count(*) DESC, domain LIMIT 1"))[0];
            var small = (string)(await Row("SELECT domain FROM spool_recipients GROUP BY domain ORDER BY count(*), domain LIMIT 1"))[0];
            var deferred = Id((await Row("SELECT message_id FROM spool_recipients WHERE state = 2 ORDER BY id DESC LIMIT 1 OFFSET 100"))[0]);
            var delivered = Id((await Row("SELECT message_id FROM spool_recipients WHERE state = 3 ORDER BY id LIMIT 1 OFFSET 1000"))[0]);
            var half = (long)(await Row("SELECT count(*) / 2 FROM spool_messages"))[0];
            var deep = await Row("SELECT received_at, id FROM spool_messages ORDER BY received_at DESC, id DESC LIMIT 1 OFFSET " + half.ToString(CultureInfo.InvariantCulture));
            var middle = DateTimeOffset.FromUnixTimeMilliseconds((long)deep[0]);
            var counts = await Row("SELECT count(*), count(*) FILTER (WHERE state IN (0, 1, 2, 7)) FROM spool_recipients");
            return new Samples(sender, recipient, big, small, middle, new MessageCursor(middle, Id(deep[1])), deferred, delivered, (long)counts[0], (long)counts[1]);
        }
    }

    private static List<Call> Calls(Samples s)
    {
        static string Q(string value) => Uri.EscapeDataString(value);
        static string T(DateTimeOffset time) => Uri.EscapeDataString(time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
        static string Items(JsonElement page) => page.GetProperty("items").GetArrayLength().ToString(CultureInfo.InvariantCulture) + " messages" +
            (page.TryGetProperty("next", out var next) && next.ValueKind == JsonValueKind.String ? ", next" : "");
        static string Summary(JsonElement summary) => string.Create(CultureInfo.InvariantCulture,
            $"{summary.GetProperty("total").GetProperty("total").GetInt64():N0} pending, {summary.GetProperty("domainCount").GetInt32():N0} domains");
        static string Detail(JsonElement message) => string.Create(CultureInfo.InvariantCulture,
            $"{message.GetProperty("recipients").GetArrayLength()} recipient(s)");
        var page = "/api/v1/admin/messages?limit=50";
        return
        [
            new("queue summary (dashboard)", "/api/v1/admin/queue/summary?domains=20", Summary),
            new("queue summary (`mailmesh queue`)", "/api/v1/admin/queue/summary?domains=100", Summary),
            new("search: newest, no filter", page, Items),
            new("search: a cursor page half-way down", page + "&cursor=" + s.Deep.Encode(), Items),
            new("search: sender", page + "&sender=" + Q(s.Sender), Items),
            new("search: recipient", page + "&recipient=" + Q(s.Recipient), Items),
            new($"search: domain, the largest ({s.BigDomain})", page + "&domain=" + Q(s.BigDomain), Items),
            new($"search: domain, a small one ({s.SmallDomain})", page + "&domain=" + Q(s.SmallDomain), Items),
            new("search: state deferred", page + "&state=deferred", Items),
            new("search: state held", page + "&state=held", Items),
            new($"search: domain {s.BigDomain} and state deferred", page + "&domain=" + Q(s.BigDomain) + "&state=deferred", Items),
            new("search: a one-hour time range", page + "&from=" + T(s.Middle.AddHours(-1)) + "&to=" + T(s.Middle), Items),
            new("search: state bounced, class InvalidRecipient", page + "&state=bounced&class=InvalidRecipient", Items),
            new("search: state bounced, class, a cursor page", page + "&state=bounced&class=InvalidRecipient&cursor=" + s.Deep.Encode(), Items),
            new("search: class InvalidRecipient (any state)", page + "&class=InvalidRecipient", Items),
            new("search: state bounced or deferred", page + "&state=bounced&state=deferred", Items),
            new("search: state delivered", page + "&state=delivered", Items),
            new("search: state in flight (none)", page + "&state=in_flight", Items),
            new($"search: domain {s.SmallDomain} and state delivered", page + "&domain=" + Q(s.SmallDomain) + "&state=delivered", Items),
            new($"search: domain {s.BigDomain} and state bounced", page + "&domain=" + Q(s.BigDomain) + "&state=bounced", Items),
            new($"search: domain {s.BigDomain} and state delivered", page + "&domain=" + Q(s.BigDomain) + "&state=delivered", Items),
            new("search: sender and state bounced", page + "&sender=" + Q(s.Sender) + "&state=bounced", Items),
            new("search: a one-hour time range and state bounced", page + "&state=bounced&from=" + T(s.Middle.AddHours(-1)) + "&to=" + T(s.Middle), Items),
            new("message detail (deferred, with attempts)", "/api/v1/admin/messages/" + s.DeferredMessage, Detail),
            new("message detail (delivered)", "/api/v1/admin/messages/" + s.DeliveredMessage, Detail),
        ];
    }

    private static async Task<List<Result>> MeasureAsync(Options options, string connectionString, List<Call> calls)
    {
        var key = "mmk_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        var http = LoopbackPort.Free();
        var settings = new Dictionary<string, string>
        {
            ["Storage__Provider"] = options.Sqlite ? "sqlite" : "postgres",
            [options.Sqlite ? "Storage__SqlitePath" : "ConnectionStrings__Spool"] = connectionString,
            ["Urls"] = $"http://127.0.0.1:{http}",
            ["Ingress__Listen"] = $"127.0.0.1:{LoopbackPort.Free()}",
            ["Mailbox__Pop3Listen"] = $"127.0.0.1:{LoopbackPort.Free()}",
            ["Mailbox__ImapListen"] = $"127.0.0.1:{LoopbackPort.Free()}",
            ["Admin__ApiKeys__0__Name"] = "load",
            ["Admin__ApiKeys__0__Hash"] = MailMesh.ServiceDefaults.Security.ApiKeys.Hash(key),
            ["Admin__ApiKeys__0__Scopes"] = "messages:read queue:read",
            // Keep the seeded history: the completed-message purge would start deleting it at once.
            ["Queue__PurgeCompletedAfter"] = "3650.00:00:00",
            ["Logging__LogLevel__Default"] = "Warning",
        };
        var dll = Path.Combine(options.RepositoryRoot, "services/MailMesh.Standalone/bin/Release/net10.0/MailMesh.Standalone.dll");
        using var process = Target.StartProcess("dotnet", dll, settings);
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{http}"), Timeout = TimeSpan.FromMinutes(2) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            await WaitReadyAsync(client, process);
            Console.WriteLine($"admin-api: Standalone (pid {process.Id}) on {(options.Sqlite ? "SQLite" : "PostgreSQL")} answers on {client.BaseAddress}; timing {calls.Count} calls x {options.Repeat}");
            var results = new List<Result>();
            foreach (var call in calls)
            {
                var times = new List<double>();
                var failed = 0;
                var answer = "";
                for (var i = 0; i < options.Repeat + 2; i++)
                {
                    var clock = Stopwatch.StartNew();
                    using var response = await client.GetAsync(call.Path);
                    var body = await response.Content.ReadAsByteArrayAsync();
                    var elapsed = clock.Elapsed.TotalMilliseconds;
                    if (!response.IsSuccessStatusCode)
                    {
                        failed++;
                        answer = $"HTTP {(int)response.StatusCode}: {System.Text.Encoding.UTF8.GetString(body)}";
                        continue;
                    }

                    if (i >= 2)
                    {
                        times.Add(elapsed);
                    }

                    using var json = JsonDocument.Parse(body);
                    answer = call.Describe(json.RootElement) + string.Create(CultureInfo.InvariantCulture, $", {body.Length:N0} B");
                }

                times.Sort();
                results.Add(new Result(call.Name, call.Path, Percentile(times, 0.50), Percentile(times, 0.99), times.Count == 0 ? double.NaN : times[^1],
                    failed == 0 ? answer : $"{failed} failed: {answer}", failed));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"admin-api: {call.Name}: p50 {results[^1].P50:F1} ms, p99 {results[^1].P99:F1} ms ({answer})"));
            }

            return results;
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    /// <summary>Nearest rank (with 20 samples, p99 is the slowest).</summary>
    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static async Task WaitReadyAsync(HttpClient client, Process process)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(3))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"Standalone exited with code {process.ExitCode}");
            }

            try
            {
                using var response = await client.GetAsync("/readyz");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(200);
        }

        throw new TimeoutException("Standalone was not ready after 3 minutes");
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
