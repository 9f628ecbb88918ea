using System.Text.Json;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// Every service starts its thread pool with at least 64 worker threads (Directory.Build.props, ThreadPoolMinThreads).
/// With one thread per core on two cores, a burst of deliveries starved Delivery's pool: the database answered a lease
/// take in milliseconds, but Delivery read the answer after more than Delivery:StoreTimeout (issue 8).
/// </summary>
public sealed class RuntimeConfigTests
{
    [Fact]
    public void Every_service_starts_its_thread_pool_with_64_worker_threads()
    {
        // The same build output layout as this test's own (bin/<configuration>/<framework>/).
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var framework = output.Name;
        var configuration = output.Parent!.Name;
        var root = output;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "MailMesh.sln")))
        {
            root = root.Parent;
        }

        Assert.NotNull(root);
        var services = new[] { "Ingress", "Policy", "Queue", "Dns", "Delivery", "Standalone" };
        foreach (var service in services)
        {
            var name = "MailMesh." + service;
            var path = Path.Combine(root.FullName, "services", name, "bin", configuration, framework, name + ".runtimeconfig.json");
            Assert.True(File.Exists(path), $"{path} is missing: build the solution first");
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            var properties = json.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
            Assert.True(
                properties.TryGetProperty("System.Threading.ThreadPool.MinThreads", out var minThreads) && minThreads.GetInt32() >= 64,
                $"{name}: System.Threading.ThreadPool.MinThreads is not at least 64 in {path}");
        }
    }
}
