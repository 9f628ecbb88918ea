using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Testing.Scanning;

/// <summary>
/// A real clamd (Debian's clamav-daemon) for tests: TCP on 127.0.0.1 and a free port, in the foreground, with a LOCAL
/// signature database in a temporary directory (no freshclam: there is no internet): the EICAR test file as an MD5
/// signature made by <c>sigtool --md5</c> (eicar.hdb, matches an attachment that is exactly the file) and as a body
/// signature (eicar.ndb, matches the string anywhere in any part). Ready when <c>zPING</c> answers PONG.
/// </summary>
public sealed class ClamdServer : ScannerProcess
{
    /// <summary>The 68-byte EICAR anti-virus test file.</summary>
    public const string Eicar = @"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

    /// <summary>The name clamd reports for the body signature (clamd appends ".UNOFFICIAL" to local signatures).</summary>
    public const string SignatureName = "MailMesh.Test.EICAR";

    private ClamdServer(int port, long streamMaxLength)
        : base("clamd")
    {
        Port = port;
        StreamMaxLength = streamMaxLength;
    }

    public int Port { get; }

    /// <summary>clamd's StreamMaxLength: INSTREAM data past it ends the session with "size limit exceeded".</summary>
    public long StreamMaxLength { get; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    /// <summary>"127.0.0.1:port", the form Policy:Clamd:Address takes.</summary>
    public string Address => "127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);

    protected override string LogFile => Path.Combine(Directory, "clamd.log");

    public static async Task<ClamdServer> StartAsync(long streamMaxLength = 10 * 1024 * 1024)
    {
        var clamd = Find("clamd");
        var sigtool = Find("sigtool");
        var server = new ClamdServer(LoopbackPort.Free(), streamMaxLength);
        try
        {
            await server.WriteDatabaseAsync(sigtool);
            var config = Path.Combine(server.Directory, "clamd.conf");
            await File.WriteAllTextAsync(config, $"""
                Foreground yes
                TCPSocket {server.Port.ToString(CultureInfo.InvariantCulture)}
                TCPAddr 127.0.0.1
                DatabaseDirectory {Path.Combine(server.Directory, "db")}
                LogFile {server.LogFile}
                PidFile {Path.Combine(server.Directory, "clamd.pid")}
                StreamMaxLength {streamMaxLength.ToString(CultureInfo.InvariantCulture)}
                SelfCheck 0
                """);
            await server.StartAsync(clamd, ["-c", config], TimeSpan.FromSeconds(90));
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    private async Task WriteDatabaseAsync(string sigtool)
    {
        var database = Path.Combine(Directory, "db");
        System.IO.Directory.CreateDirectory(database);
        var sample = Path.Combine(Directory, "eicar.com");
        await File.WriteAllTextAsync(sample, Eicar, Encoding.ASCII);

        var start = new System.Diagnostics.ProcessStartInfo(sigtool, ["--md5", "eicar.com"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Directory,
        };
        using var process = System.Diagnostics.Process.Start(start)!;
        var md5 = (await process.StandardOutput.ReadToEndAsync()).Trim();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0 || !md5.EndsWith(":68:eicar.com", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"sigtool --md5 eicar.com gave '{md5}' ({await process.StandardError.ReadToEndAsync()})");
        }

        await File.WriteAllTextAsync(Path.Combine(database, "eicar.hdb"), md5.Replace(":eicar.com", ":" + SignatureName + ".File", StringComparison.Ordinal) + "\n");
        await File.WriteAllTextAsync(Path.Combine(database, "eicar.ndb"),
            $"{SignatureName}:0:*:{Convert.ToHexStringLower(Encoding.ASCII.GetBytes(Eicar))}\n");
        File.Delete(sample);
    }

    protected override async Task<bool> IsReadyAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port, cancellationToken);
            var stream = client.GetStream();
            await stream.WriteAsync("zPING\0"u8.ToArray(), cancellationToken);
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer, cancellationToken);
            return Encoding.ASCII.GetString(buffer, 0, read).TrimEnd('\0') == "PONG";
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
