using Xunit;

namespace MailMesh.Testing.Scanning;

/// <summary>
/// One rspamd and one clamd shared by the tests of a collection (each takes seconds to start): use it as an
/// <c>ICollectionFixture</c>; tests must not change the daemons' state.
/// </summary>
public sealed class ScannerFixture : IAsyncLifetime
{
    private RspamdServer? _rspamd;
    private ClamdServer? _clamd;

    public RspamdServer Rspamd => _rspamd ?? throw new InvalidOperationException("not started");

    public ClamdServer Clamd => _clamd ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        var rspamd = RspamdServer.StartAsync();
        var clamd = ClamdServer.StartAsync();
        try
        {
            _rspamd = await rspamd;
        }
        finally
        {
            _clamd = await clamd;
        }
    }

    public async Task DisposeAsync()
    {
        if (_rspamd is not null)
        {
            await _rspamd.DisposeAsync();
        }

        if (_clamd is not null)
        {
            await _clamd.DisposeAsync();
        }
    }
}
