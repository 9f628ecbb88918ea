using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MailMesh.Policy.Content;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Scanning;

/// <summary>rspamd's answer to one /checkv2 request.</summary>
internal sealed record RspamdVerdict(string Action, double Score, double RequiredScore, IReadOnlyList<(string Name, double Score)> Symbols, string? SmtpMessage);

/// <summary>
/// Spam scanning with rspamd (https://rspamd.com/doc/architecture/protocol.html): the content is streamed in a
/// <c>POST /checkv2</c> with the transaction in request headers (IP, Helo, From, one Rcpt per recipient, User), and
/// rspamd's action maps to the configured <see cref="ScanAction"/>: reject → 550 5.7.1 with rspamd's reason,
/// soft reject and greylist → 451 4.7.1, add header and rewrite subject → X-Spam headers (and \Junk when configured),
/// no action → accepted with an X-Spam-Status header.
/// </summary>
/// <remarks>
/// The request is written over a plain HTTP/1.1 connection rather than HttpClient: rspamd wants one <c>Rcpt</c> header
/// per recipient, and HttpClient joins repeated headers into one comma-separated line. One connection per scan
/// (<c>Connection: close</c>), the same cost as rspamd's own milter proxy. A scanner that is down, slow past
/// <see cref="ScannerOptions.Timeout"/> or answering anything but a verdict gives <see cref="ScannerOptions.UnavailableAction"/>.
/// </remarks>
internal sealed class RspamdCheck(IOptions<RspamdOptions> options, PolicyMetrics metrics, ILogger<RspamdCheck> logger) : IContentCheck
{
    private const int MaxResponse = 4 * 1024 * 1024;
    private readonly RspamdOptions _options = options.Value;

    public string Name => "rspamd";

    public IReadOnlyCollection<string> StampedFields { get; } = ["X-Spam-Status", "X-Spam-Symbols", "X-Spam-Flag", "X-Spam"];

    /// <summary>After clamd (200): a virus is refused before the more expensive spam scan.</summary>
    public int Order => 210;

    public bool AppliesTo(ContentCheckRequest request) => _options.AppliesTo(request);

    public async Task<ContentCheckResult> CheckAsync(ContentCheckRequest request, CancellationToken cancellationToken)
    {
        using var activity = PolicyTelemetry.Source.StartActivity("policy.rspamd", ActivityKind.Client);
        var started = Stopwatch.GetTimestamp();
        ContentCheckResult result;
        if (request.Length > _options.MaxSize)
        {
            logger.ScanSkipped(Name, request.Length, RspamdOptions.SectionName + ":MaxSize", _options.MaxSize);
            metrics.Scanned(Name, "skipped", Stopwatch.GetElapsedTime(started));
            activity?.SetTag("mailmesh.scan.result", "skipped");
            return ContentCheckResult.Pass;
        }

        try
        {
            var verdict = await ScanAsync(request, cancellationToken);
            result = Map(verdict);
            activity?.SetTag("mailmesh.rspamd.action", verdict.Action);
            activity?.SetTag("mailmesh.rspamd.score", verdict.Score);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && ex is IOException or SocketException or OperationCanceledException or TimeoutException or JsonException or RspamdProtocolException)
        {
            logger.ScannerUnavailable(ex, Name, _options.Url);
            activity?.AddException(ex);
            metrics.Scanned(Name, "unavailable", Stopwatch.GetElapsedTime(started));
            return ScanVerdict.Unavailable(_options.UnavailableAction, "spam scanner unavailable", "X-Spam-Status");
        }

        var keyword = ScanVerdict.Keyword(result);
        activity?.SetTag("mailmesh.scan.result", keyword);
        metrics.Scanned(Name, keyword, Stopwatch.GetElapsedTime(started));
        return result;
    }

    /// <summary>The configured action for rspamd's action, with its headers.</summary>
    internal ContentCheckResult Map(RspamdVerdict verdict)
    {
        var action = verdict.Action switch
        {
            "reject" => _options.RejectAction,
            "soft reject" => _options.SoftRejectAction,
            "rewrite subject" => _options.RewriteSubjectAction,
            "add header" => _options.AddHeaderAction,
            "greylist" => _options.GreylistAction,
            "no action" => ScanAction.Accept,
            _ => throw new RspamdProtocolException($"unknown action '{verdict.Action}'"),
        };

        var score = $"score={ScanVerdict.Number(verdict.Score)} required={ScanVerdict.Number(verdict.RequiredScore)}";
        var spam = action is ScanAction.Tag or ScanAction.Junk or ScanAction.Reject or ScanAction.TempFail;
        var symbols = string.Join(", ", verdict.Symbols
            .Where(s => s.Score != 0)
            .OrderByDescending(s => Math.Abs(s.Score))
            .Take(30)
            .Select(s => string.Create(CultureInfo.InvariantCulture, $"{ScanVerdict.Printable(s.Name, 64)}({s.Score:0.00})")));
        var headers = new List<string>
        {
            ScanVerdict.Field("X-Spam-Status", $"{(spam ? "Yes" : "No")}, {score} action=\"{verdict.Action}\" scanner=rspamd"),
        };
        if (symbols.Length > 0)
        {
            headers.Add(ScanVerdict.Field("X-Spam-Symbols", symbols));
        }

        var reason = action == ScanAction.Reject || action == ScanAction.TempFail
            ? "spam message refused" + (verdict.SmtpMessage is { Length: > 0 } message ? ": " + ScanVerdict.Printable(message) : string.Empty)
            : $"rspamd {verdict.Action} {ScanVerdict.Number(verdict.Score)}/{ScanVerdict.Number(verdict.RequiredScore)}";
        return ScanVerdict.Apply(action, reason, headers);
    }

    private async Task<RspamdVerdict> ScanAsync(ContentCheckRequest request, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        var token = timeout.Token;
        var uri = _options.BaseUri;

        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(uri.Host, uri.Port, token);
        await using var stream = client.GetStream();

        var head = new StringBuilder();
        head.Append("POST ").Append(new Uri(uri, "checkv2").PathAndQuery).Append(" HTTP/1.1\r\n");
        head.Append("Host: ").Append(uri.Authority).Append("\r\n");
        head.Append("Connection: close\r\n");
        head.Append("Content-Length: ").Append(request.Length.ToString(CultureInfo.InvariantCulture)).Append("\r\n");
        Header(head, "IP", request.ClientAddress.IsIPv4MappedToIPv6 ? request.ClientAddress.MapToIPv4().ToString() : request.ClientAddress.ToString());
        if (request.ClientHelo is { Length: > 0 } helo)
        {
            Header(head, "Helo", helo);
        }

        Header(head, "From", request.Sender.Length == 0 ? "<>" : request.Sender);
        foreach (var recipient in request.Recipients)
        {
            Header(head, "Rcpt", recipient);
        }

        if (request.AuthenticatedUser is { Length: > 0 } user)
        {
            Header(head, "User", user);
        }

        if (Activity.Current?.TraceId is { } trace && trace != default)
        {
            Header(head, "Queue-Id", trace.ToHexString()[..16]);
        }

        head.Append("\r\n");
        await stream.WriteAsync(Encoding.UTF8.GetBytes(head.ToString()), token);
        await using (var content = request.OpenContent())
        {
            await content.CopyToAsync(stream, 64 * 1024, token);
        }

        await stream.FlushAsync(token);
        var (status, body) = await ReadResponseAsync(stream, token);
        if (status != 200)
        {
            throw new RspamdProtocolException($"HTTP {status.ToString(CultureInfo.InvariantCulture)}: {ScanVerdict.Printable(Encoding.UTF8.GetString(body))}");
        }

        return Parse(body);
    }

    /// <summary>Header values are single-line: CR and LF (which would start a header of the client's choosing) become spaces.</summary>
    private static void Header(StringBuilder head, string name, string value) =>
        head.Append(name).Append(": ").Append(value.Replace('\r', ' ').Replace('\n', ' ')).Append("\r\n");

    /// <summary>Reads the status and the body (Content-Length, else to the end of the connection).</summary>
    private static async Task<(int Status, byte[] Body)> ReadResponseAsync(Stream stream, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > MaxResponse)
            {
                throw new RspamdProtocolException("response too large");
            }
        }

        var bytes = buffer.ToArray();
        var end = bytes.AsSpan().IndexOf("\r\n\r\n"u8);
        if (end < 0)
        {
            throw new RspamdProtocolException("incomplete HTTP response");
        }

        var lines = Encoding.ASCII.GetString(bytes, 0, end).Split("\r\n");
        var statusParts = lines[0].Split(' ', 3);
        if (statusParts.Length < 2 || !statusParts[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(statusParts[1], CultureInfo.InvariantCulture, out var status))
        {
            throw new RspamdProtocolException($"not an HTTP response: {ScanVerdict.Printable(lines[0])}");
        }

        var body = bytes[(end + 4)..];
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon < 0)
            {
                continue;
            }

            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && !value.Equals("identity", StringComparison.OrdinalIgnoreCase))
            {
                throw new RspamdProtocolException($"unsupported Transfer-Encoding {value}");
            }

            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && int.TryParse(value, CultureInfo.InvariantCulture, out var length))
            {
                if (length > body.Length)
                {
                    throw new RspamdProtocolException("truncated HTTP response");
                }

                body = body[..length];
            }
        }

        return (status, body);
    }

    /// <summary>The fields of a /checkv2 reply that MailMesh uses.</summary>
    internal static RspamdVerdict Parse(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        using var document = JsonDocument.ParseValue(ref reader);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("action", out var action) || action.ValueKind != JsonValueKind.String)
        {
            throw new RspamdProtocolException(root.TryGetProperty("error", out var error) ? "rspamd error: " + ScanVerdict.Printable(error.ToString()) : "no action in the reply");
        }

        var score = root.TryGetProperty("score", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetDouble() : 0;
        var required = root.TryGetProperty("required_score", out var r) && r.ValueKind == JsonValueKind.Number ? r.GetDouble() : 0;
        var symbols = new List<(string, double)>();
        if (root.TryGetProperty("symbols", out var list) && list.ValueKind == JsonValueKind.Object)
        {
            foreach (var symbol in list.EnumerateObject())
            {
                var value = symbol.Value.ValueKind == JsonValueKind.Object && symbol.Value.TryGetProperty("score", out var sc) && sc.ValueKind == JsonValueKind.Number ? sc.GetDouble() : 0;
                symbols.Add((symbol.Name, value));
            }
        }

        string? smtpMessage = null;
        if (root.TryGetProperty("messages", out var messages) && messages.ValueKind == JsonValueKind.Object
            && messages.TryGetProperty("smtp_message", out var message) && message.ValueKind == JsonValueKind.String)
        {
            smtpMessage = message.GetString();
        }

        return new RspamdVerdict(action.GetString()!, score, required, symbols, smtpMessage);
    }
}

/// <summary>rspamd answered, but not with a verdict.</summary>
internal sealed class RspamdProtocolException(string message) : Exception(message);
