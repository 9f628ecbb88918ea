using System.Diagnostics.Metrics;
using MailMesh.Testing.Dns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Dns.Tests;

/// <summary>A resolver pointed at a fresh <see cref="TestDnsServer"/>, on a fake clock.</summary>
internal sealed class ResolverFixture : IDisposable
{
    private readonly ServiceProvider _services;

    public ResolverFixture(Action<DnsOptions>? configure = null)
    {
        Server = TestDnsServer.Start();
        Options = new DnsOptions
        {
            Servers = Server.EndPoint.ToString(),
            // Generous: a loaded CI machine must not turn a slow answer into a temporary failure.
            Timeout = TimeSpan.FromSeconds(5),
            Retries = 0,
            MinTtl = TimeSpan.Zero,
        };
        configure?.Invoke(Options);
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        Resolver = new MxResolver(
            Microsoft.Extensions.Options.Options.Create(Options),
            Time,
            new DnsMetrics(_services.GetRequiredService<IMeterFactory>()),
            NullLogger<MxResolver>.Instance);
    }

    public TestDnsServer Server { get; }

    public DnsOptions Options { get; }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public MxResolver Resolver { get; }

    public void Dispose()
    {
        Resolver.Dispose();
        Server.Dispose();
        _services.Dispose();
    }
}
