using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MailMesh.Ingress.Http;
using MailMesh.Ingress.Memory;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;

namespace MailMesh.Ingress.FunctionalTests.Http;

/// <summary>
/// Issue 7 §3 for JSON submissions: the request body and the message composed from it are both reserved from
/// Ingress:MaxBufferedBytes (shared with SMTP and raw HTTP); the composed message spills past Ingress:MemoryBodyThreshold
/// and the JSON is released before the commit; a body past the limit is refused with 413 before it is held (from its
/// Content-Length, and as soon as a chunked one passes it); an exhausted budget is a 503 with Retry-After, never an OOM.
/// </summary>
public sealed class HttpJsonMemoryTests : IDisposable
{
    private const int Staging = 64 * 1024;

    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4)).Token;

    private readonly string _spillDirectory = Path.Combine(Path.GetTempPath(), "mailmesh-http-json-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_spillDirectory))
        {
            Directory.Delete(_spillDirectory, recursive: true);
        }
    }

    private Task<HttpApiHost> StartAsync(Dictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?> { ["Ingress:SpillDirectory"] = _spillDirectory };
        foreach (var (key, value) in settings ?? [])
        {
            all[key] = value;
        }

        return HttpApiHost.StartAsync(all);
    }

    private static MessageBufferBudget Budget(HttpApiHost host) => host.Services.GetRequiredService<MessageBufferBudget>();

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static byte[] Attachment(int length)
    {
        var data = new byte[length];
        new Random(7).NextBytes(data);
        return data;
    }

    private static async Task<MimePart> StoredAttachmentAsync(HttpApiHost host, HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync(Timeout);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
        var id = Guid.Parse(JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!);
        var stored = await host.Spool.Inner.GetMessageAsync(id, Timeout);
        var mime = await MimeMessage.LoadAsync(new MemoryStream(stored!.Content.ToArray()), Timeout);
        return Assert.IsType<MimePart>(mime.Attachments.Single());
    }

    private static async Task<byte[]> DecodedAsync(MimePart part)
    {
        using var decoded = new MemoryStream();
        await part.Content!.DecodeToAsync(decoded, Timeout);
        return decoded.ToArray();
    }

    [Fact]
    public async Task A_20_MB_attachment_is_stored_byte_exact_with_JSON_and_message_spilled_and_the_JSON_released_at_the_commit()
    {
        await using var host = await StartAsync();
        var budget = Budget(host);
        var data = Attachment(20 * 1024 * 1024);
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            from = "sender@example.com",
            to = new[] { "rcpt@example.org" },
            subject = "Big",
            text = "See the attachment.",
            attachments = new[] { new { filename = "big.bin", contentType = "application/octet-stream", content = Convert.ToBase64String(data) } },
        }));

        long atCommit = -1;
        var spilledAtCommit = false;
        host.Spool.BeforeStore = (message, _) =>
        {
            atCommit = budget.InUse;
            spilledAtCommit = message.ContentSource is not null && Directory.GetFiles(_spillDirectory).Length == 1;
            return Task.CompletedTask;
        };

        budget.ResetPeak();
        using var client = host.CreateClient();
        client.Timeout = TimeSpan.FromMinutes(3);
        var content = new ByteArrayContent(json);
        content.Headers.ContentType = new("application/json");
        using var response = await client.PostAsync("/api/v1/messages", content, Timeout);
        var attachment = await StoredAttachmentAsync(host, response);
        Assert.Equal("big.bin", attachment.FileName);
        Assert.Equal(data, await DecodedAsync(attachment));

        // At the commit only the composed message's staging area was held: the JSON was released and the message had
        // moved to its spill file. Afterwards nothing is held and no file is left.
        Assert.True(spilledAtCommit);
        Assert.InRange(atCommit, 1, Staging);
        Assert.Equal(0, budget.InUse);
        Assert.Equal(0, budget.Spilled);
        Assert.Empty(Directory.GetFiles(_spillDirectory));

        // Neither the 28 MB of JSON nor the message composed from it was ever held in memory: each moved to its spill file
        // at Ingress:MemoryBodyThreshold (1 MiB), so the most held at once was one buffer's last growth below it (its
        // 512 KiB and 1 MiB arrays) beside the other's staging area. Before, the JSON was held whole and the attachment
        // was also a 53 MB string, two 20 MB arrays, MimeKit's copy and the composed message, none of them counted.
        Assert.InRange(budget.Peak, 1, 3 * 1024 * 1024);
    }

    [Fact]
    public async Task A_JSON_submission_is_503_with_Retry_After_when_the_budget_runs_out_while_the_message_is_composed()
    {
        await using var host = await StartAsync();
        var budget = Budget(host);
        var data = Attachment(400 * 1024);
        var message = new
        {
            from = "sender@example.com",
            to = new[] { "rcpt@example.org" },
            text = "x",
            attachments = new[] { new { filename = "a.bin", contentType = "application/octet-stream", content = Convert.ToBase64String(data) } },
        };

        // 2 MiB left: the ~540 kB body fits while its buffer grows (512 KiB and 1 MiB arrays at once), but the body's 1 MiB
        // and the composed message's growth to 1 MiB (512 KiB and 1 MiB at once) do not.
        var held = budget.Limit - (2 * 1024 * 1024);
        Assert.True(budget.TryReserve(held));
        try
        {
            using var client = host.CreateClient();
            using var refused = await client.PostAsync("/api/v1/messages", Json(message), Timeout);
            var problem = await refused.Content.ReadAsStringAsync(Timeout);
            Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)refused.StatusCode}: {problem}");
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.Equal(TimeSpan.FromSeconds(7), refused.Headers.RetryAfter?.Delta);
            Assert.Contains("Ingress:MaxBufferedBytes", problem, StringComparison.Ordinal);
            Assert.Empty(host.Spool.Stored);
            Assert.Empty(host.Policy.Asked);
            Assert.Equal(held, budget.InUse);
        }
        finally
        {
            budget.Release(held);
        }

        // With the budget back, the same request is accepted and the attachment stored as sent.
        using var again = host.CreateClient();
        using var accepted = await again.PostAsync("/api/v1/messages", Json(message), Timeout);
        Assert.Equal(data, await DecodedAsync(await StoredAttachmentAsync(host, accepted)));
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public async Task A_JSON_body_over_the_limit_is_413_from_its_Content_Length_before_any_of_it_is_sent()
    {
        await using var host = await StartAsync(new() { ["Ingress:MaxMessageSize"] = (1024 * 1024).ToString(CultureInfo.InvariantCulture) });
        var limit = SubmissionHandler.JsonBodyLimit(1024 * 1024);

        // Only the head goes out: an answer can only come from the Content-Length.
        var (status, response) = await SendHeadAsync(host, $"Content-Length: {limit + 1}\r\n", body: []);
        Assert.Equal(413, status);
        Assert.Contains("message-too-large", response, StringComparison.Ordinal);
        Assert.Equal(0, Budget(host).Peak);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task A_chunked_JSON_body_is_413_as_soon_as_it_passes_the_limit_before_the_client_has_sent_it_all()
    {
        await using var host = await StartAsync(new() { ["Ingress:MaxMessageSize"] = (1024 * 1024).ToString(CultureInfo.InvariantCulture) });
        var limit = SubmissionHandler.JsonBodyLimit(1024 * 1024);

        // Chunks past the limit, and never the last chunk: the body is never complete, yet the answer comes.
        var chunk = new string('a', 64 * 1024);
        var chunks = new StringBuilder();
        const string Start = "{\"text\": \"";
        chunks.Append(CultureInfo.InvariantCulture, $"{Start.Length:X}\r\n{Start}\r\n");
        for (long sent = 0; sent <= limit; sent += chunk.Length)
        {
            chunks.Append(CultureInfo.InvariantCulture, $"{chunk.Length:X}\r\n{chunk}\r\n");
        }

        var (status, response) = await SendHeadAsync(host, "Transfer-Encoding: chunked\r\n", Encoding.ASCII.GetBytes(chunks.ToString()));
        Assert.Equal(413, status);
        Assert.Contains("message-too-large", response, StringComparison.Ordinal);

        // What was held is at most the limit (with the buffer's last growth), and it is released.
        Assert.InRange(Budget(host).Peak, 1, 3 * limit);
        await Budget(host).WaitUntilAsync(inUse => inUse == 0, Timeout);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task A_body_of_too_many_JSON_values_is_refused_before_it_is_turned_into_a_tree()
    {
        await using var host = await StartAsync();
        var numbers = string.Join(',', Enumerable.Repeat("0", JsonTree.MaxValues + 1));
        using var client = host.CreateClient();
        using var response = await client.PostAsync(
            "/api/v1/messages", Json("{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"x\", \"x\": [" + numbers + "]}"), Timeout);
        var problem = await response.Content.ReadAsStringAsync(Timeout);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, problem);
        Assert.Contains("malformed-json", problem, StringComparison.Ordinal);
        Assert.Contains("more than 100000 JSON values", problem, StringComparison.Ordinal);
        Assert.Equal(0, Budget(host).InUse);
    }

    [Fact]
    public async Task Escaped_base64_and_text_are_decoded_as_the_message_is_composed()
    {
        await using var host = await StartAsync();
        var data = Attachment(3000);

        // As other encoders write it: "+" as \u002B, "/" as \/, the base64 wrapped in lines; the text with every kind of
        // line end, an escaped surrogate pair and a quote.
        var base64 = Convert.ToBase64String(data, Base64FormattingOptions.InsertLineBreaks)
            .Replace("+", "\\u002B", StringComparison.Ordinal).Replace("/", "\\/", StringComparison.Ordinal).Replace("\r\n", "\\r\\n", StringComparison.Ordinal);
        var body = "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"subject\": \"s\", "
            + "\"text\": \"one\\r\\ntwo\\nthree\\rfour \\ud83d\\ude00 \\\"q\\\" é\", "
            + "\"attachments\": [{\"filename\": \"d.bin\", \"content\": \"" + base64 + "\"}]}";
        using var client = host.CreateClient();
        using var response = await client.PostAsync("/api/v1/messages", Json(body), Timeout);
        var attachment = await StoredAttachmentAsync(host, response);
        Assert.Equal(data, await DecodedAsync(attachment));

        // The text part's octets as decoded from its transfer encoding: UTF-8 with every line end CRLF (RFC 2046 §4.1.1).
        var stored = await host.Spool.Inner.GetMessageAsync(Assert.Single(host.Spool.Stored), Timeout);
        var mime = await MimeMessage.LoadAsync(new MemoryStream(stored!.Content.ToArray()), Timeout);
        var text = Assert.IsType<TextPart>(mime.BodyParts.Single(p => p is TextPart { IsPlain: true }));
        Assert.Equal("utf-8", text.ContentType.Charset);
        Assert.Equal(Encoding.UTF8.GetBytes("one\r\ntwo\r\nthree\r\nfour 😀 \"q\" é"), (await DecodedAsync(text)).AsSpan().TrimEnd("\r\n"u8).ToArray());
    }

    [Theory]
    [InlineData("\"attachments\": [{\"filename\": \"a.bin\", \"content\": \"AA==AA==\"}]", "/attachments/0/content: is not valid base64")]
    [InlineData("\"attachments\": [{\"filename\": \"a.bin\", \"content\": \"AAA\"}]", "/attachments/0/content: is not valid base64")]
    [InlineData("\"attachments\": [{\"filename\": \"a.bin\", \"content\": \"QUJD\\u00e9\"}]", "/attachments/0/content: is not valid base64")]
    [InlineData("\"text\": \"lone \\ud800 surrogate\"", "/text: is not valid Unicode")]
    public async Task Invalid_content_is_400_at_its_pointer_and_nothing_is_held(string member, string detail)
    {
        await using var host = await StartAsync();
        using var client = host.CreateClient();
        using var response = await client.PostAsync("/api/v1/messages", Json("{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], " + member + "}"), Timeout);
        var problem = await response.Content.ReadAsStringAsync(Timeout);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, problem);
        Assert.Contains(detail, problem, StringComparison.Ordinal);
        Assert.Equal(0, Budget(host).InUse);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task A_spilled_JSON_body_that_is_invalid_at_its_end_is_400_and_its_file_and_budget_are_released()
    {
        await using var host = await StartAsync(new() { ["Ingress:MemoryBodyThreshold"] = "65536" });
        var budget = Budget(host);
        var body = "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"" + new string('x', 300_000) + "\", \"text\": \"again\"}";
        using var client = host.CreateClient();
        using var response = await client.PostAsync("/api/v1/messages", Json(body), Timeout);
        var problem = await response.Content.ReadAsStringAsync(Timeout);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, problem);
        Assert.Contains("twice", problem, StringComparison.Ordinal);

        // The 300 kB body was never held in memory (it moved to its file at 64 KiB), and nothing is left.
        Assert.InRange(budget.Peak, 1, 200_000);
        Assert.Equal(0, budget.InUse);
        Assert.Equal(0, budget.Spilled);
        Assert.Empty(Directory.GetFiles(_spillDirectory));
        Assert.Empty(host.Spool.Stored);
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("message/rfc822")]
    public async Task A_body_whose_last_octets_do_not_fit_the_spill_limit_is_503_not_500(string mediaType)
    {
        // Ingress:MaxSpilledBytes one octet short of the body: every full staging area fits, the tail written when the
        // body ends does not. That used to surface as an exception from the spill file's reader: a 500.
        var text = new StringBuilder();
        for (var i = 0; i < 3001; i++)
        {
            text.Append('x', 98).Append(mediaType == "message/rfc822" ? "\r\n" : "\\r\\n");
        }

        var body = mediaType == "message/rfc822"
            ? "From: a@example.com\r\nTo: b@example.org\r\n\r\n" + text
            : "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"" + text + "\"}";
        var octets = Encoding.UTF8.GetBytes(body);
        await using var host = await StartAsync(new()
        {
            ["Ingress:MemoryBodyThreshold"] = "65536",
            ["Ingress:MaxSpilledBytes"] = (octets.Length - 1).ToString(CultureInfo.InvariantCulture),
        });
        var budget = Budget(host);
        using var client = host.CreateClient();
        var content = new ByteArrayContent(octets);
        content.Headers.ContentType = new(mediaType);
        using var response = await client.PostAsync("/api/v1/messages", content, Timeout);
        var problem = await response.Content.ReadAsStringAsync(Timeout);
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode}: {problem}");
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal(0, budget.InUse);
        Assert.Equal(0, budget.Spilled);
        Assert.Empty(Directory.GetFiles(_spillDirectory));
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public void JSON_text_decodes_the_same_read_one_octet_at_a_time_and_after_a_seek_back()
    {
        var raw = "a\\r\\nb\\nc\\rd\\r\\u00e9\\ud83d\\ude00\\/"u8.ToArray();
        var text = new JsonText(raw, Escaped: true);
        Assert.True(text.TryMeasureText(out var length));
        var expected = "a\r\nb\r\nc\r\nd\r\né😀/"u8.ToArray();
        Assert.Equal(expected.Length, length);

        using var stream = text.OpenCanonicalText(length);
        var one = new byte[1];
        var read = new List<byte>();
        while (stream.Read(one) == 1)
        {
            read.Add(one[0]);
        }

        Assert.Equal(expected, read);
        stream.Position = 3;
        var rest = new byte[expected.Length];
        Assert.Equal(expected.Length - 3, stream.Read(rest));
        Assert.Equal(expected[3..], rest[..(expected.Length - 3)]);

        var data = Attachment(1000);
        var base64 = new JsonText(Encoding.ASCII.GetBytes(Convert.ToBase64String(data, Base64FormattingOptions.InsertLineBreaks)), Escaped: false);
        Assert.True(base64.TryMeasureBase64(out var decodedLength));
        Assert.Equal(data.Length, decodedLength);
        using var decoded = base64.OpenBase64(decodedLength);
        var bytes = new List<byte>();
        var three = new byte[3];
        int count;
        while ((count = decoded.Read(three)) > 0)
        {
            bytes.AddRange(three[..count]);
        }

        Assert.Equal(data, bytes);
    }

    /// <summary>Sends a POST head (and <paramref name="body"/>) on a raw socket and reads the status line and answer.</summary>
    private static async Task<(int Status, string Response)> SendHeadAsync(HttpApiHost host, string framing, byte[] body)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(host.BaseAddress.Host, host.BaseAddress.Port, Timeout);
        var head = $"POST /api/v1/messages HTTP/1.1\r\nHost: {host.BaseAddress.Authority}\r\nAuthorization: Bearer {HttpApiHost.Key}\r\n"
            + $"Content-Type: application/json\r\n{framing}\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(head), Timeout);
        if (body.Length > 0)
        {
            await socket.SendAsync(body, Timeout);
        }

        var received = new List<byte>();
        var buffer = new byte[8192];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer, Timeout);
            if (read == 0)
            {
                break;
            }

            received.AddRange(buffer[..read]);
            var text = Encoding.ASCII.GetString(received.ToArray());
            var headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (headEnd > 0 && text.Contains('}', StringComparison.Ordinal))
            {
                break;
            }
        }

        var response = Encoding.ASCII.GetString(received.ToArray());
        return (int.Parse(response.AsSpan(9, 3), CultureInfo.InvariantCulture), response);
    }
}
