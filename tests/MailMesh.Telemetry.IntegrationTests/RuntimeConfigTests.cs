using System.Text.Json;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// Every service runs with dynamic PGO off (Directory.Build.props, TieredPGO). With it on, the services spent a fifth
/// of their CPU re-compiling instrumented code long after start, and the distributed pipeline moved about a third
/// fewer 100 KB mails per second (issue 8, docs/performance.md, session 8). And with no spin-waiting in the thread
/// pool: idle workers spinning took CPU from the processes that had work (session 10).
/// </summary>
public sealed class RuntimeConfigTests
{
    [Fact]
    public void Every_service_runs_with_dynamic_PGO_off_and_no_thread_pool_spinning()
    {
        // The same build output layout as this test's own (bin/<configuration>/<framework>/).
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var framework = output.Name;
        var configuration = output.Parent!.Name;
        var services = new[] { "Ingress", "Policy", "Queue", "Dns", "Delivery", "Mailbox", "Migrator", "Admin", "Standalone" };
        foreach (var service in services)
        {
            var name = "MailMesh." + service;
            var path = Path.Combine(TestEnvironment.RepositoryRoot, "services", name, "bin", configuration, framework, name + ".runtimeconfig.json");
            Assert.True(File.Exists(path), $"{path} is missing: build the solution first");
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            var properties = json.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
            Assert.True(
                properties.TryGetProperty("System.Runtime.TieredPGO", out var pgo) && pgo.ValueKind == JsonValueKind.False,
                $"{name}: System.Runtime.TieredPGO is not false in {path}");
            Assert.True(
                properties.TryGetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit", out var spin) && spin.ToString() == "0",
                $"{name}: System.Threading.ThreadPool.UnfairSemaphoreSpinLimit is not 0 in {path}");
        }
    }
}
