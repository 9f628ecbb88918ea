using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.LoadTool;

/// <summary>Where the target delivers: counts arrivals and remembers when the last one came.</summary>
internal interface ILoadSink : IAsyncDisposable
{
    string Name { get; }

    int Port { get; }

    /// <summary>Messages that arrived, duplicates included.</summary>
    long Messages { get; }

    /// <summary>Distinct messages (by the load tool's Subject token); equals <see cref="Messages"/> where the sink cannot tell.</summary>
    long UniqueMessages { get; }

    /// <summary>Stopwatch timestamp of the last arrival; 0 before the first.</summary>
    long LastArrival { get; }

    /// <summary>The sink's own process when it is one (for CPU accounting); null when it runs inside the load tool.</summary>
    int? ProcessId { get; }

    public static async Task<ILoadSink> StartAsync(LoadOptions options) => options.Sink switch
    {
        "builtin" => new CountingSink(IPAddress.Loopback, options.SinkPort, options.SinkLatency),
        "smtp-sink" => await SmtpSinkProcess.StartAsync(options.SinkPort == 0 ? LoopbackPort.Free() : options.SinkPort),
        _ => throw new ArgumentException($"--sink {options.Sink}: builtin or smtp-sink"),
    };
}

/// <summary>
/// Postfix's smtp-sink(1) as the counting sink: a C, event-driven server that costs next to no CPU. With -c it prints
/// "sess=N quit=N mesg=N" followed by a carriage return each time a DATA completes; the load tool reads that stream and
/// timestamps each increment. It cannot tell duplicates apart.
/// </summary>
internal sealed class SmtpSinkProcess : ILoadSink
{
    private readonly Process _process;
    private readonly Task _reader;
    private long _messages;
    private long _lastArrival;

    private SmtpSinkProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        _reader = Task.Run(ReadCountersAsync);
    }

    public string Name => "smtp-sink";

    public int Port { get; }

    public long Messages => Interlocked.Read(ref _messages);

    public long UniqueMessages => Messages;

    public long LastArrival => Interlocked.Read(ref _lastArrival);

    public int? ProcessId => _process.Id;

    public static async Task<SmtpSinkProcess> StartAsync(int port)
    {
        // -u nobody: it drops privileges when started as root; 256: the listen backlog.
        var info = new ProcessStartInfo("/usr/sbin/smtp-sink") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "-c", "-u", "nobody", $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}", "256" })
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start smtp-sink");
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine("smtp-sink: " + e.Data);
            }
        };
        process.BeginErrorReadLine();
        await Target.WaitForPortAsync(port, process);
        return new SmtpSinkProcess(process, port);
    }

    /// <summary>Parses the mesg= count out of one "sess=1 quit=1 mesg=2" record.</summary>
    internal static long? ParseMessageCount(string record)
    {
        var index = record.LastIndexOf("mesg=", StringComparison.Ordinal);
        if (index < 0)
        {
            return null;
        }

        var digits = record.AsSpan(index + 5);
        var end = 0;
        while (end < digits.Length && char.IsAsciiDigit(digits[end]))
        {
            end++;
        }

        return end > 0 ? long.Parse(digits[..end], CultureInfo.InvariantCulture) : null;
    }

    private async Task ReadCountersAsync()
    {
        var record = new StringBuilder();
        var buffer = new char[4096];
        var stream = _process.StandardOutput;
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            var now = Stopwatch.GetTimestamp();
            for (var i = 0; i < read; i++)
            {
                if (buffer[i] is '\r' or '\n')
                {
                    if (ParseMessageCount(record.ToString()) is { } count && count > Interlocked.Read(ref _messages))
                    {
                        Interlocked.Exchange(ref _lastArrival, now);
                        Interlocked.Exchange(ref _messages, count);
                    }

                    record.Clear();
                }
                else
                {
                    record.Append(buffer[i]);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync();
        await _reader;
        _process.Dispose();
    }
}
