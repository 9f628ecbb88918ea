using MailMesh.Testing.Dkim;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// ARC end to end in the real standalone process (<see cref="ArcRelay"/>): MailMesh relays mail for dest.test to its
/// server (a sink), verifying DKIM, ARC and DMARC on the way in and sealing with Dkim:Arc on the way out; the copies at
/// the sink carry a valid ARC set (i=1 cv=none, i=2 cv=pass) by dkimpy, MimeKit and mailauth, and a chain broken before
/// it arrived stays failed (i=2 cv=fail).
/// </summary>
public sealed class ArcStandaloneTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly RelayBench _bench = new("mailmesh-arc-");
    private readonly ArcRelay _relay = new();

    public Task InitializeAsync()
    {
        _bench.Dns.AddMx(ArcRelay.Domain, 10, "mx." + ArcRelay.Domain).AddAddress("mx." + ArcRelay.Domain, "127.0.0.1");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _relay.Dispose();
        await _bench.DisposeAsync();
    }

    [Fact]
    public async Task Relayed_mail_reaches_the_destination_with_a_valid_ARC_set_whose_cv_reflects_the_inbound_chain()
    {
        var settings = _bench.Settings();
        foreach (var (key, value) in _relay.Settings)
        {
            settings[key] = value;
        }

        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);
        await _relay.SendAsync(mailmesh.SmtpPort);
        var delivered = await _bench.Sink.WaitForMessagesAsync(3, Patience);
        await _relay.VerifyAsync(delivered.Select(m => m.Data));
    }
}
