using System.Globalization;
using System.Net.Sockets;
using MailMesh.LoadTool;
using MailMesh.Testing.Dns;

// MailMesh load tool: N messages over M connections, accept rate and latency at the SMTP server, end-to-end delivered
// rate at a counting sink that the target delivers to (found through an in-process DNS server), bus messages per mail
// and CPU seconds per 1,000 messages per process. See README.md.
//
//   load --target standalone   [--messages 2000] [--connections 20] [--size 10240]
//   load --target distributed  (starts deploy/scripts/run-distributed.sh against local RabbitMQ and PostgreSQL)
//        [--delivery-replicas 3] [--delivery-connections 4] [--delivery-concurrency 4]
//   load --target postfix      (a private Postfix instance relaying to the sink)
//   load ... --smtp-source [--smtp-source-args "-d"]   drive the target with Debian's smtp-source
//   load ... --compare-postfix [--repeat 2]            the same load against Postfix in the same run, and the ratio
//   load ... --rate 80% --connections 40 --messages 9000   a peak run first, then paced at 80 % of its end-to-end rate
//   load ... --sink smtp-sink                          Postfix's smtp-sink as the counting sink
//   --sink-latency 200           the sink answers the end of data 200 ms late: a latency-bound destination
//   load --target 127.0.0.1:25 --sink-port 2626    (any SMTP server, e.g. Postfix relaying to the sink)
//   load --chaos [--short]       fault injection on private servers (MailMesh.Chaos; docs/reliability.md)
//   load --admin-api [--messages 1000000] [--spool "<connection string>"] [--keep] [--repeat 20]
//                                the admin API's search and queue summary timed over HTTP on a seeded PostgreSQL spool
//   load --admin-api --provider sqlite [--spool <file>]   the same on a seeded SQLite spool (Standalone's store)
if (args.Contains("--chaos"))
{
    return await ChaosCommand.RunAsync(args);
}

if (args.Contains("--admin-api"))
{
    return await AdminApiCommand.RunAsync(args);
}

LoadOptions options;
try
{
    options = LoadOptions.Parse(args);
}
catch (Exception ex) when (ex is ArgumentException or FormatException or OverflowException)
{
    // Bad input gets a clear answer, not a stack trace.
    await Console.Error.WriteLineAsync($"load: {ex.Message} (options: tools/MailMesh.LoadTool/README.md)");
    return 2;
}

if (options.MemoryScenario is { } memoryScenario)
{
    return await MemoryScenario.RunAsync(options, memoryScenario);
}

// The built-in client and sink run on this process's thread pool, whose minimum is one thread per core: without more,
// a sink session's reply waited behind client work, and MailMesh's delivery connections (latency-bound) slowed down.
ThreadPool.GetMinThreads(out var workers, out var completionPorts);
ThreadPool.SetMinThreads(Math.Max(workers, 4 * options.Connections), completionPorts);

using var dns = TestDnsServer.Start();
dns.AddMx("load.test", 10, "mx.load.test").AddAddress("mx.load.test", "127.0.0.1");
var shared = await SharedServers.FindAsync();
Console.WriteLine($"load: DNS on {dns.EndPoint} (MX load.test -> 127.0.0.1); RabbitMQ node pid {shared.RabbitMqPid?.ToString(CultureInfo.InvariantCulture) ?? "not found"}, postmaster pid {shared.PostgresPid?.ToString(CultureInfo.InvariantCulture) ?? "not found"}");

string[] sequence = options.ComparePostfix ? [options.Target, "postfix"] : [options.Target];
Console.WriteLine(MachineSpeed.Describe("before the runs"));
var runs = new List<RunResult>();
for (var round = 0; round < options.Repeat; round++)
{
    foreach (var target in sequence)
    {
        var planned = options with { Target = target };
        if (planned.RateOfPeak is { } share)
        {
            // "p99 at 80 % of peak": the peak measured now, on the machine as it is now, then the paced run at that share.
            if (await RunAsync(planned.PeakRun()) is not { } peak)
            {
                return 1;
            }

            if (peak.Error is not null || peak.EndToEndRate <= 0)
            {
                await Console.Error.WriteLineAsync($"load: {target}: the peak run failed ({peak.Error ?? "nothing delivered"}), so there is no rate to pace at");
                break;
            }

            planned = planned.PacedRun(peak.EndToEndRate);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"load: paced at {share * 100:0.#} % of that peak's {peak.EndToEndRate:F1} msg/s end to end: --rate {planned.Rate:F1}"));
        }

        if (await RunAsync(planned) is null)
        {
            return 1;
        }
    }
}

Console.WriteLine(MachineSpeed.Describe("after the runs"));
Console.WriteLine();
Console.Write(Report.Format(runs));
if (options.ComparePostfix)
{
    var mailMesh = runs.Where(r => r.Kind != "postfix").Select(r => r.EndToEndRate).ToList();
    var postfix = runs.Where(r => r.Kind == "postfix").Select(r => r.EndToEndRate).ToList();
    Console.WriteLine();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"end-to-end ratio MailMesh/Postfix: {string.Join(", ", mailMesh.Zip(postfix, (m, p) => (m / p).ToString("F2", CultureInfo.InvariantCulture)))} (per round; MailMesh {string.Join(", ", mailMesh.Select(m => m.ToString("F1", CultureInfo.InvariantCulture)))} msg/s, Postfix {string.Join(", ", postfix.Select(p => p.ToString("F1", CultureInfo.InvariantCulture)))} msg/s)"));
}

return runs.Count > 0 && runs.All(r => r.Error is null && r.Accepted == r.Messages && r.Delivered >= r.Accepted) ? 0 : 1;

async Task<RunResult?> RunAsync(LoadOptions planned)
{
    RunResult run;
    try
    {
        run = await LoadRun.RunAsync(planned, dns.EndPoint, shared);
    }
    catch (Exception ex) when (ex is LoadClientException or SocketException)
    {
        // The target (stopped by now) refused the load: a clear answer, not a stack trace.
        await Console.Error.WriteLineAsync($"load: {planned.Target}: {ex.Message}");
        return null;
    }

    runs.Add(run);
    Console.WriteLine($"load: run {runs.Count}: {run.Description}: accepted {run.Accepted}/{run.Messages} in {run.AcceptSeconds:F2} s, delivered {run.Delivered} in {run.EndToEndSeconds:F2} s");
    return run;
}
