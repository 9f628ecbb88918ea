using System.Diagnostics;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Testing.RabbitMq;

/// <summary>
/// A fresh RabbitMQ virtual host on the test broker, so tests that run in parallel never see each other's
/// exchanges and queues. Made and deleted with rabbitmqctl (the test command runs as the broker's admin).
/// </summary>
public sealed class TestVirtualHost : IAsyncDisposable
{
    private TestVirtualHost(string name)
    {
        Name = name;
        var broker = TestEnvironment.RabbitMqUri;
        Uri = new UriBuilder(broker) { Path = "/" + Uri.EscapeDataString(name) }.Uri;
    }

    public string Name { get; }

    /// <summary>The amqp:// URI of this virtual host, for ConnectionStrings:RabbitMq.</summary>
    public Uri Uri { get; }

    public static async Task<TestVirtualHost> CreateAsync()
    {
        var host = new TestVirtualHost(TestEnvironment.UniqueName("mm"));
        var user = TestEnvironment.RabbitMqUri.UserInfo.Split(':')[0];
        await RabbitMqCtlAsync("add_vhost", host.Name);
        await RabbitMqCtlAsync("set_permissions", "-p", host.Name, user, ".*", ".*", ".*");
        return host;
    }

    public async ValueTask DisposeAsync() => await RabbitMqCtlAsync("delete_vhost", Name);

    private static async Task RabbitMqCtlAsync(params string[] arguments)
    {
        var info = new ProcessStartInfo("rabbitmqctl") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("-q");
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("rabbitmqctl did not start");
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', arguments)} failed: {error}");
        }
    }
}
