using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace MailMesh.LoadTool;

/// <summary>
/// Bus messages counted on the broker: RabbitMQ's core counters (rabbit_global_counters, RabbitMQ 3.9+), read with
/// <c>rabbitmqctl eval</c> before and after a run. They need no plugin: the management plugin was not enabled on the
/// shared broker because its statistics collection costs the broker CPU during the very run being measured, and it
/// would change a broker that other engineers' tests use. The counters are node-wide, so anything else publishing on
/// the node during the run is counted too; <see cref="OtherVirtualHostsAsync"/> names the other virtual hosts with
/// connections so the report can say when the figure is polluted.
/// </summary>
internal static partial class RabbitMqCounters
{
    /// <summary>Published (received from clients, AMQP 0-9-1) and delivered to consumers (all queue types).</summary>
    internal readonly record struct Totals(long Published, long Delivered);

    private const string CountersExpression =
        "M = rabbit_global_counters:overview(), " +
        "P = maps:get(messages_received_total, maps:get([{protocol,amqp091}], M)), " +
        "D = lists:sum([maps:get(messages_delivered_total, V) || {[{protocol,amqp091},{queue_type,_}], V} <- maps:to_list(M)]), " +
        "{mailmesh_counters, P, D}.";

    public static async Task<Totals?> ReadAsync()
    {
        var (code, output) = await Command.RunAsync("rabbitmqctl", ["-q", "eval", CountersExpression]);
        return code == 0 ? ParseTotals(output) : null;
    }

    /// <summary>Parses the eval's answer, <c>{mailmesh_counters,123,456}</c>.</summary>
    internal static Totals? ParseTotals(string output) =>
        TotalsPattern().Match(output) is { Success: true } match
            ? new Totals(long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture))
            : null;

    /// <summary>The OS pid of the RabbitMQ node (beam.smp) that rabbitmqctl talks to: the shared broker.</summary>
    public static async Task<int?> NodePidAsync()
    {
        var (code, output) = await Command.RunAsync("rabbitmqctl", ["-q", "eval", "list_to_integer(os:getpid())."]);
        return code == 0 && int.TryParse(output.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }

    /// <summary>Virtual hosts other than <paramref name="ours"/> that have client connections now, with their count.</summary>
    public static async Task<IReadOnlyDictionary<string, int>> OtherVirtualHostsAsync(string ours)
    {
        var (code, output) = await Command.RunAsync("rabbitmqctl", ["-q", "list_connections", "vhost", "--no-table-headers"]);
        return code == 0 ? ParseOtherVirtualHosts(output, ours) : new Dictionary<string, int>();
    }

    internal static IReadOnlyDictionary<string, int> ParseOtherVirtualHosts(string output, string ours) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(vhost => vhost != ours && !vhost.StartsWith("Listing ", StringComparison.Ordinal))
            .GroupBy(vhost => vhost, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);

    [GeneratedRegex(@"\{mailmesh_counters,\s*(\d+),\s*(\d+)\}")]
    private static partial Regex TotalsPattern();
}

/// <summary>
/// Bus messages counted by MassTransit itself, in every mode (the in-memory bus of Standalone too): the sum of the
/// <c>messaging.masstransit.receive</c> counter (Prometheus <c>messaging_masstransit_receive_ea_total</c>) over the
/// services' /metrics endpoints, i.e. every message a receive endpoint took off the bus, responses included.
/// </summary>
internal static partial class MassTransitCounters
{
    public static async Task<long?> ReadAsync(IEnumerable<Uri> metricsEndpoints) => From(await MetricsScrape.ReadAsync(metricsEndpoints));

    /// <summary>The sum over the expositions of one scrape; null if no endpoint answered.</summary>
    public static long? From(IReadOnlyList<string> expositions) => expositions.Count == 0 ? null : expositions.Sum(SumReceived);

    /// <summary>Σ of every <c>messaging_masstransit_receive_ea_total</c> sample in a Prometheus text exposition.</summary>
    internal static long SumReceived(string exposition)
    {
        double total = 0;
        foreach (var line in exposition.Split('\n'))
        {
            if (SamplePattern().Match(line) is { Success: true } match)
            {
                total += double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            }
        }

        return (long)Math.Round(total);
    }

    // messaging_masstransit_receive_ea_total{labels} value [timestamp]: the OpenTelemetry Prometheus exporter names the
    // counter after its unit ("ea", each); receive_active_ea_total (in progress) is a different series.
    [GeneratedRegex(@"^messaging_masstransit_receive(?:_ea)?_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)")]
    private static partial Regex SamplePattern();
}

/// <summary>The Prometheus text expositions of the services' /metrics endpoints that answered (one scrape).</summary>
internal static class MetricsScrape
{
    public static async Task<IReadOnlyList<string>> ReadAsync(IEnumerable<Uri> metricsEndpoints)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var expositions = new List<string>();
        foreach (var endpoint in metricsEndpoints)
        {
            try
            {
                expositions.Add(await http.GetStringAsync(endpoint));
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
        }

        return expositions;
    }
}

/// <summary>Runs a command to completion and returns its exit code and standard output.</summary>
internal static class Command
{
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            await error;
            return (process.ExitCode, await output);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (-1, ex.Message);
        }
    }
}
