using System.Diagnostics;
using System.Globalization;
using System.Net;
using MailMesh.LoadTool;
using MailMesh.Testing.Dns;

// MailMesh load tool: N messages over M connections, accept rate and latency at the SMTP server, and end-to-end
// delivered rate at a counting sink that the target delivers to (found through an in-process DNS server).
//
//   load --target standalone   [--messages 2000] [--connections 20] [--size 10240]
//   load --target distributed  (starts deploy/scripts/run-distributed.sh against local RabbitMQ and PostgreSQL)
//        [--delivery-replicas 3] [--delivery-connections 4] [--delivery-concurrency 4]
//                               (Delivery processes; per replica: SMTP connections to one destination, deliveries at once)
//   --sink-latency 200           the sink answers the end of data 200 ms late: a latency-bound destination
//   load --target 127.0.0.1:25 --sink-port 2626    (any SMTP server, e.g. Postfix relaying to the sink)
//   load --chaos [--short]       fault injection on private servers (MailMesh.Chaos; docs/reliability.md)
if (args.Contains("--chaos"))
{
    return await ChaosCommand.RunAsync(args);
}

var options = LoadOptions.Parse(args);
if (options.MemoryScenario is { } memoryScenario)
{
    return await MemoryScenario.RunAsync(options, memoryScenario);
}

using var dns = TestDnsServer.Start();
dns.AddMx("load.test", 10, "mx.load.test").AddAddress("mx.load.test", "127.0.0.1");
await using var sink = new CountingSink(IPAddress.Loopback, options.SinkPort, options.SinkLatency);
Console.WriteLine($"load: sink on 127.0.0.1:{sink.Port} (end-of-data latency {options.SinkLatency.TotalMilliseconds} ms), DNS on {dns.EndPoint} (MX load.test -> 127.0.0.1)");

await using var target = await Target.StartAsync(options, dns.EndPoint, sink.Port);
var body = SmtpLoadClient.BuildBody(options.Size);
var perConnection = options.Messages / options.Connections;
var total = perConnection * options.Connections;

using var timeout = new CancellationTokenSource(options.Timeout);
var started = Stopwatch.GetTimestamp();
var results = await Task.WhenAll(Enumerable.Range(0, options.Connections).Select(index =>
    Task.Run(() => new SmtpLoadClient(target.Host, target.Port).RunAsync(index, perConnection, body, "load.test", timeout.Token))));
var acceptSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;

var latencies = results.SelectMany(r => r.LatenciesMs).Order().ToArray();
var accepted = latencies.Length;
var rejected = results.Sum(r => r.Rejected);

// End to end: wait until the sink holds every accepted message (or the timeout).
while (sink.UniqueMessages < accepted && !timeout.IsCancellationRequested)
{
    await Task.Delay(50, CancellationToken.None);
}

var deliveredSeconds = sink.LastArrival == 0 ? double.NaN : Stopwatch.GetElapsedTime(started, sink.LastArrival).TotalSeconds;
string Rate(double count, double seconds) => (count / seconds).ToString("F1", CultureInfo.InvariantCulture);
string Ms(double value) => value.ToString("F1", CultureInfo.InvariantCulture);

Console.WriteLine();
Console.WriteLine($"target            {target.Description}");
Console.WriteLine($"messages          {total} x {options.Size} bytes over {options.Connections} connections");
Console.WriteLine($"accepted          {accepted} ({rejected} refused) in {acceptSeconds:F2} s = {Rate(accepted, acceptSeconds)} msg/s");
if (accepted > 0)
{
    Console.WriteLine($"accept latency    p50 {Ms(Percentile(latencies, 0.50))} ms, p99 {Ms(Percentile(latencies, 0.99))} ms, max {Ms(latencies[^1])} ms");
}

Console.WriteLine($"sink              {sink.MaxConcurrentSessions} concurrent sessions at most, end-of-data latency {options.SinkLatency.TotalMilliseconds} ms");
Console.WriteLine($"delivered         {sink.UniqueMessages} unique ({sink.Messages} with duplicates) in {deliveredSeconds:F2} s = {Rate(sink.UniqueMessages, deliveredSeconds)} msg/s end to end");
return sink.UniqueMessages >= accepted && accepted == total ? 0 : 1;

static double Percentile(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
