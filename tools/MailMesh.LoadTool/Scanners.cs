using MailMesh.Testing.Scanning;

namespace MailMesh.LoadTool;

/// <summary>
/// The scanners of a run (--rspamd, --clamd): the settings that turn them on in the target, and the private rspamd or
/// clamd the tool started for "start" (stopped after the run). The load's clients relay from loopback (submitters),
/// so rspamd is told to scan submitters too; with both off nothing is started and nothing changes.
/// </summary>
internal sealed class Scanners : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _started = [];

    public Dictionary<string, string> Settings { get; } = [];

    public static async Task<Scanners> StartAsync(LoadOptions options)
    {
        var scanners = new Scanners();
        try
        {
            if (options.Rspamd is { } rspamd)
            {
                var url = rspamd;
                if (rspamd == "start")
                {
                    var server = await RspamdServer.StartAsync();
                    scanners._started.Add(server);
                    url = server.Url.ToString();
                }

                scanners.Settings["Policy__Rspamd__Enabled"] = "true";
                scanners.Settings["Policy__Rspamd__Url"] = url;
                scanners.Settings["Policy__Rspamd__ScanSubmitters"] = "true";
                Console.WriteLine($"load: rspamd at {url} scans every message");
            }

            if (options.Clamd is { } clamd)
            {
                var address = clamd;
                if (clamd == "start")
                {
                    var server = await ClamdServer.StartAsync();
                    scanners._started.Add(server);
                    address = server.Address;
                }

                scanners.Settings["Policy__Clamd__Enabled"] = "true";
                scanners.Settings["Policy__Clamd__Address"] = address;
                Console.WriteLine($"load: clamd at {address} scans every message");
            }

            return scanners;
        }
        catch
        {
            await scanners.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var started in _started)
        {
            await started.DisposeAsync();
        }

        _started.Clear();
    }
}
