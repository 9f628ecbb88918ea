using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using MailMesh.Policy.Content;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Scanning;

/// <summary>
/// Virus scanning with clamd's INSTREAM command (clamd(8)): <c>zINSTREAM\0</c>, the content in chunks each preceded by
/// its length (4 octets, network order), a zero-length chunk, then one reply: <c>stream: OK</c>,
/// <c>stream: NAME FOUND</c> (→ 550 5.7.1 "virus found: NAME") or <c>... ERROR</c>.
/// </summary>
/// <remarks>
/// Messages over <see cref="ScannerOptions.MaxSize"/> are not sent (clamd would end the stream at its StreamMaxLength);
/// they are accepted, logged and counted as "skipped". clamd down, slow past <see cref="ScannerOptions.Timeout"/> or
/// answering an error gives <see cref="ScannerOptions.UnavailableAction"/> (451 4.7.1 by default).
/// </remarks>
internal sealed class ClamdCheck(IOptions<ClamdOptions> options, PolicyMetrics metrics, ILogger<ClamdCheck> logger) : IContentCheck
{
    private const int ChunkSize = 64 * 1024;
    private readonly ClamdOptions _options = options.Value;

    public string Name => "clamd";

    public IReadOnlyCollection<string> StampedFields { get; } = ["X-Virus-Status", "X-Spam-Flag", "X-Spam"];

    public int Order => 200;

    public bool AppliesTo(ContentCheckRequest request) => _options.AppliesTo(request);

    public async Task<ContentCheckResult> CheckAsync(ContentCheckRequest request, CancellationToken cancellationToken)
    {
        using var activity = PolicyTelemetry.Source.StartActivity("policy.clamd", ActivityKind.Client);
        var started = Stopwatch.GetTimestamp();
        if (request.Length > _options.MaxSize)
        {
            logger.ScanSkipped(Name, request.Length, ClamdOptions.SectionName + ":MaxSize", _options.MaxSize);
            metrics.Scanned(Name, "skipped", Stopwatch.GetElapsedTime(started));
            activity?.SetTag("mailmesh.scan.result", "skipped");
            return ContentCheckResult.Pass;
        }

        string reply;
        try
        {
            reply = await ScanAsync(request, cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && ex is IOException or SocketException or OperationCanceledException or TimeoutException)
        {
            return Unavailable(ex, "no reply", activity, started);
        }

        // "stream: OK", "stream: Eicar-Signature FOUND", "INSTREAM size limit exceeded. ERROR", "... ERROR".
        ContentCheckResult result;
        if (reply.EndsWith(" FOUND", StringComparison.Ordinal))
        {
            var name = reply["stream:".Length..^" FOUND".Length].Trim();
            name = ScanVerdict.Printable(name, 100);
            activity?.SetTag("mailmesh.clamd.virus", name);
            logger.VirusFound(name, request.ClientAddress.ToString());
            var reason = "virus found: " + name;
            result = ScanVerdict.Apply(_options.VirusAction, reason, [ScanVerdict.Field("X-Virus-Status", "Infected, " + name + " (clamd)")]);
        }
        else if (reply == "stream: OK")
        {
            result = new ContentCheckResult { Headers = [ScanVerdict.Field("X-Virus-Status", "Clean (clamd)")] };
        }
        else
        {
            return Unavailable(new IOException("clamd: " + ScanVerdict.Printable(reply)), reply, activity, started);
        }

        var keyword = ScanVerdict.Keyword(result);
        activity?.SetTag("mailmesh.scan.result", keyword);
        metrics.Scanned(Name, keyword, Stopwatch.GetElapsedTime(started));
        return result;
    }

    private ContentCheckResult Unavailable(Exception ex, string reply, Activity? activity, long started)
    {
        logger.ScannerUnavailable(ex, Name, _options.Address);
        activity?.AddException(ex);
        activity?.SetTag("mailmesh.scan.result", "unavailable");
        metrics.Scanned(Name, "unavailable", Stopwatch.GetElapsedTime(started));
        if (reply.Contains("size limit exceeded", StringComparison.Ordinal))
        {
            logger.ClamdStreamLimit(ClamdOptions.SectionName + ":MaxSize", _options.MaxSize);
        }

        return ScanVerdict.Unavailable(_options.UnavailableAction, "virus scanner unavailable", "X-Virus-Status");
    }

    private async Task<string> ScanAsync(ContentCheckRequest request, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        var token = timeout.Token;
        if (!ClamdOptions.TryParseAddress(_options.Address, out var endPoint))
        {
            throw new IOException($"{ClamdOptions.SectionName}:Address '{_options.Address}' is not host:port or unix:/path");
        }

        using var socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint, token);
        await using var stream = new NetworkStream(socket, ownsSocket: false);

        await stream.WriteAsync("zINSTREAM\0"u8.ToArray(), token);
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize + 4);
        try
        {
            await using var content = request.OpenContent();
            try
            {
                int read;
                while ((read = await content.ReadAsync(buffer.AsMemory(4, ChunkSize), token)) > 0)
                {
                    BinaryPrimitives.WriteUInt32BigEndian(buffer, (uint)read);
                    await stream.WriteAsync(buffer.AsMemory(0, read + 4), token);
                }

                BinaryPrimitives.WriteUInt32BigEndian(buffer, 0);
                await stream.WriteAsync(buffer.AsMemory(0, 4), token);
            }
            catch (IOException) when (!token.IsCancellationRequested)
            {
                // clamd closes the stream early when it refuses it (StreamMaxLength): its reply says why.
            }

            return await ReadReplyAsync(stream, buffer, token);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The reply up to its terminating NUL (the "z" command prefix) or the end of the connection.</summary>
    private static async Task<string> ReadReplyAsync(Stream stream, byte[] buffer, CancellationToken cancellationToken)
    {
        var reply = new MemoryStream();
        int read;
        while (reply.Length < 4096 && (read = await stream.ReadAsync(buffer.AsMemory(0, 1024), cancellationToken)) > 0)
        {
            var nul = Array.IndexOf(buffer, (byte)0, 0, read);
            reply.Write(buffer, 0, nul < 0 ? read : nul);
            if (nul >= 0)
            {
                break;
            }
        }

        if (reply.Length == 0)
        {
            throw new IOException("clamd closed the connection without a reply");
        }

        return Encoding.UTF8.GetString(reply.GetBuffer(), 0, (int)reply.Length).Trim();
    }
}
