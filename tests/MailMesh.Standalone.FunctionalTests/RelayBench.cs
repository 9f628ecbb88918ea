using System.Globalization;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Smtp;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// What a relaying standalone needs around it: a test DNS server (each test adds its MX records), an SMTP sink on the
/// port Delivery uses for every exchanger, a working directory, and the settings that point the process at them
/// (short retries and polls, the test API keys).
/// </summary>
internal sealed class RelayBench(string prefix) : IAsyncDisposable
{
    public TestDnsServer Dns { get; } = TestDnsServer.Start();

    public SmtpSink Sink { get; } = SmtpSink.Start();

    public DirectoryInfo WorkingDirectory { get; } = Directory.CreateTempSubdirectory(prefix);

    public Dictionary<string, string> Settings()
    {
        var settings = new Dictionary<string, string>
        {
            ["Dns:Servers"] = Dns.EndPoint.ToString(),
            ["Delivery:Port"] = Sink.Port.ToString(CultureInfo.InvariantCulture),
            ["Queue:FirstRetryDelay"] = "00:00:01",
            ["Queue:Jitter"] = "0",
            ["Queue:PollInterval"] = "00:00:00.200",
        };
        TestKeys.AddTo(settings);
        return settings;
    }

    public async ValueTask DisposeAsync()
    {
        await Sink.DisposeAsync();
        Dns.Dispose();
        WorkingDirectory.Delete(recursive: true);
    }
}
