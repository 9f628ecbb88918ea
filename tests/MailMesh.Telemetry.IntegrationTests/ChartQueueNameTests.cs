using System.Diagnostics;
using System.Text.RegularExpressions;
using MailMesh.Testing.Hosting;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// Issue 7 §6: the chart's KEDA trigger watched <c>delivery-attempted</c> while the queue is
/// <c>queue-delivery-attempted</c>, so Queue never scaled on backlog. Every queue the rendered chart names must exist
/// on a broker the five services started on (their own virtual host on the real RabbitMQ).
/// </summary>
public sealed partial class ChartQueueNameTests
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Every_queue_the_chart_names_exists_on_a_broker_the_services_started_on()
    {
        var root = RepositoryRoot();
        var chart = Path.Combine(root, "charts", "mailmesh");
        var helm = Path.Combine(root, "deploy", "scripts", "helm.sh");
        var named = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var values in new[] { Path.Combine(chart, "values.yaml"), Path.Combine(chart, "ci", "production-values.yaml") })
        {
            var rendered = await RunAsync(helm, "template", "mm", chart, "-f", values,
                "--set", "queue.keda.enabled=true,delivery.keda.enabled=true");
            foreach (Match match in QueueName().Matches(rendered))
            {
                named.Add(match.Groups["name"].Value.Trim('"', '\''));
            }
        }

        Assert.Contains("queue-delivery-attempted", named);
        Assert.Contains("deliver-message", named);

        await using var mesh = await DistributedMesh.CreateAsync("mailmesh_chartqueues");
        await mesh.StartAsync();
        var listed = await RunAsync("rabbitmqctl", "-q", "list_queues", "-p", mesh.VirtualHost.Name, "name");
        var queues = listed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(line => line != "name")
            .ToHashSet(StringComparer.Ordinal);

        var missing = named.Where(name => !queues.Contains(name)).ToList();
        Assert.True(missing.Count == 0,
            $"the chart names queues the services do not declare: {string.Join(", ", missing)} " +
            $"(the broker has: {string.Join(", ", queues.Order(StringComparer.Ordinal))})");
    }

    [GeneratedRegex(@"^\s*queueName:\s*(?<name>\S+)\s*$", RegexOptions.Multiline)]
    private static partial Regex QueueName();

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "MailMesh.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("repository root (MailMesh.sln) not found");
    }

    private static async Task<string> RunAsync(string tool, params string[] arguments)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException(tool + " did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(ToolTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', arguments)} did not finish: {await error}");
        }

        return process.ExitCode == 0
            ? await output
            : throw new InvalidOperationException($"{tool} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await error}");
    }
}
