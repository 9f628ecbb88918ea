using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Tests;

/// <summary>No relay networks unless configured; broad ones are reported at start.</summary>
public sealed class RelayExposureTests
{
    [Fact]
    public void By_default_no_client_may_relay_not_even_loopback()
    {
        var options = new PolicyOptions();
        Assert.Equal(string.Empty, options.RelayNetworks);
        var rules = new RelayRules(options);
        Assert.False(rules.IsRelayClient("127.0.0.1"));
        Assert.False(rules.IsRelayClient("::1"));
        Assert.False(rules.IsRelayClient("172.28.0.1"));
    }

    [Theory]
    [InlineData("0.0.0.0/0", true)]
    [InlineData("::/0", true)]
    [InlineData("10.0.0.0/8", true)]
    [InlineData("172.16.0.0/12", true)]
    [InlineData("192.168.0.0/23", true)]
    [InlineData("2001:db8::/32", true)]
    [InlineData("2001:db8::/47", true)]
    [InlineData("::ffff:10.0.0.0/104", true)]
    [InlineData("127.0.0.0/8", false)]
    [InlineData("192.168.1.0/24", false)]
    [InlineData("127.0.0.1/32", false)]
    [InlineData("2001:db8:1::/48", false)]
    [InlineData("::1/128", false)]
    [InlineData("::ffff:192.0.2.0/120", false)]
    public void Networks_wider_than_a_v4_24_or_v6_48_are_broad(string network, bool broad)
    {
        var found = RelayRules.BroadNetworks(new PolicyOptions { RelayNetworks = "::1/128," + network });
        Assert.Equal(broad, found.Contains(network));
    }

    [Fact]
    public async Task A_broad_relay_network_is_a_warning_at_start_naming_it()
    {
        var logger = new CapturingLogger<RelayNetworkCheck>();
        var check = new RelayNetworkCheck(Options.Create(new PolicyOptions { RelayNetworks = "127.0.0.1/32, 10.0.0.0/8, 2001:db8::/32" }), logger);
        await check.StartAsync(default);

        Assert.Equal(2, logger.Entries.Count);
        Assert.All(logger.Entries, e => Assert.Equal(LogLevel.Warning, e.Level));
        Assert.Contains("10.0.0.0/8", logger.Entries[0].Message, StringComparison.Ordinal);
        Assert.Contains("2001:db8::/32", logger.Entries[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Narrow_or_no_relay_networks_log_nothing()
    {
        foreach (var networks in new[] { string.Empty, "127.0.0.0/8,::1/128,192.0.2.0/24" })
        {
            var logger = new CapturingLogger<RelayNetworkCheck>();
            await new RelayNetworkCheck(Options.Create(new PolicyOptions { RelayNetworks = networks }), logger).StartAsync(default);
            Assert.Empty(logger.Entries);
        }
    }

    private sealed class CapturingLogger<T> : ILogger<T>
    {
        public List<(LogLevel Level, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((logLevel, formatter(state, exception)));
    }
}
