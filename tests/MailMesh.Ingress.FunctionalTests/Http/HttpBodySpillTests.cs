using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Ingress.Memory;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Ingress.FunctionalTests.Http;

/// <summary>
/// Issue 7 §3 for the HTTP API: a raw submission (message/rfc822) is received as SMTP receives a message, into the
/// buffered-bytes budget and, past Ingress:MemoryBodyThreshold, a delete-on-close spill file, and is stored from there
/// without a second whole copy (only its header section is rewritten). The file is gone after the 202, after a refusal,
/// and after a client that goes away mid-body.
/// </summary>
public sealed class HttpBodySpillTests : IDisposable
{
    private const int Threshold = 256 * 1024;
    private const int Staging = 64 * 1024;

    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token;

    private readonly string _spillDirectory = Path.Combine(Path.GetTempPath(), "mailmesh-http-spill-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_spillDirectory))
        {
            Directory.Delete(_spillDirectory, recursive: true);
        }
    }

    private Task<HttpApiHost> StartAsync() => HttpApiHost.StartAsync(new()
    {
        ["Ingress:MemoryBodyThreshold"] = Threshold.ToString(CultureInfo.InvariantCulture),
        ["Ingress:SpillDirectory"] = _spillDirectory,
    });

    private static MessageBufferBudget Budget(HttpApiHost host) => host.Services.GetRequiredService<MessageBufferBudget>();

    private string[] SpillFiles() => Directory.GetFiles(_spillDirectory);

    /// <summary>A raw message of about <paramref name="octets"/> octets: a Bcc to remove, then 100-octet lines, some 8-bit.</summary>
    private static (string Raw, string Stored) Message(int octets)
    {
        const string Kept = "Date: Tue, 1 Jul 2025 10:00:00 +0000\r\nMessage-ID: <big@example.com>\r\nFrom: a@example.com\r\nTo: b@example.org\r\n";
        const string Subject = "Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n";
        var body = new StringBuilder("\r\n", octets + 100);
        for (var line = 0; body.Length + 100 <= octets; line++)
        {
            body.Append(line.ToString("D10", CultureInfo.InvariantCulture)).Append(line % 1000 == 0 ? 'é' : 'x', 88).Append("\r\n");
        }

        return (Kept + "Bcc: hidden@example.net\r\n" + Subject + body, Kept + Subject + body);
    }

    private static ByteArrayContent Raw(byte[] message)
    {
        var content = new ByteArrayContent(message);
        content.Headers.ContentType = new MediaTypeHeaderValue("message/rfc822");
        return content;
    }

    [Fact]
    public async Task A_large_raw_submission_spills_and_is_stored_byte_exact_with_only_the_staging_area_buffered_and_no_file_left()
    {
        await using var host = await StartAsync();
        var budget = Budget(host);

        // Completes if the buffered bytes ever exceed what this transfer may hold (the last growth below the threshold
        // holds its old and new arrays; after the spill the threshold array and the staging area): never the 4 MiB.
        var overBudget = budget.WaitUntilAsync(inUse => inUse > Threshold + (Threshold / 2) + Staging, Timeout);
        var spilledAtCommit = false;
        long atCommit = -1;
        host.Spool.BeforeStore = (message, _) =>
        {
            atCommit = budget.InUse;
            spilledAtCommit = message.ContentSource is not null && message.Content.IsEmpty && SpillFiles().Length == 1;
            return Task.CompletedTask;
        };

        var (raw, expected) = Message(4 * 1024 * 1024);
        using var client = host.CreateClient();
        var response = await client.PostAsync("/api/v1/messages", Raw(Encoding.UTF8.GetBytes(raw)), Timeout);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync(Timeout));

        // The file was deleted and the budget released before the 202 was written.
        Assert.Empty(SpillFiles());
        Assert.Equal(0, budget.InUse);
        Assert.True(spilledAtCommit);
        Assert.InRange(atCommit, 1, Staging);
        Assert.False(overBudget.IsCompleted);

        var stored = await host.Spool.Inner.GetMessageAsync(Assert.Single(host.Spool.Stored), Timeout);
        var content = stored!.Content.ToArray();
        Assert.StartsWith("Received: ", Encoding.Latin1.GetString(content, 0, 10), StringComparison.Ordinal);
        var expectedBytes = Encoding.UTF8.GetBytes(expected);
        Assert.True(content.AsSpan().EndsWith(expectedBytes), "the stored message is not the submitted one with its Bcc removed");
        Assert.Equal(expectedBytes.Length, content.Length - content.AsSpan().IndexOf("\r\nDate: "u8) - 2);
        Assert.Equal(MailMesh.Storage.BodyType.EightBitMime, stored.BodyType);
    }

    [Fact]
    public async Task The_spill_file_is_gone_after_a_refusal_and_after_a_413_for_a_chunked_body_over_the_limit()
    {
        await using var host = await StartAsync();
        var budget = Budget(host);
        using var client = host.CreateClient();

        // Refused by Policy at a recipient after the whole (spilled) body was read.
        host.Policy.Recipient = _ => new PolicyDecision { Accepted = false, ReplyCode = 550, EnhancedCode = "5.7.1", Reason = "No" };
        var refused = await client.PostAsync("/api/v1/messages", Raw(Encoding.UTF8.GetBytes(Message(1024 * 1024).Raw)), Timeout);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        Assert.Empty(SpillFiles());
        Assert.Equal(0, budget.InUse);

        // A body without Content-Length (chunked) that goes past Ingress:MaxMessageSize: 413 as soon as it does (the rest,
        // half a MiB here so the client can finish sending and read the answer, is never buffered).
        await using var small = await HttpApiHost.StartAsync(new()
        {
            ["Ingress:MemoryBodyThreshold"] = Threshold.ToString(CultureInfo.InvariantCulture),
            ["Ingress:SpillDirectory"] = _spillDirectory,
            ["Ingress:MaxMessageSize"] = (1024 * 1024).ToString(CultureInfo.InvariantCulture),
        });
        using var smallClient = small.CreateClient();
        var endless = new StreamContent(new GeneratedMessageStream(3 * 512 * 1024));
        endless.Headers.ContentType = new MediaTypeHeaderValue("message/rfc822");
        var tooLarge = await smallClient.PostAsync("/api/v1/messages", endless, Timeout);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        Assert.Empty(SpillFiles());
        Assert.Equal(0, Budget(small).InUse);
        Assert.True(host.Spool.Stored.IsEmpty && small.Spool.Stored.IsEmpty);
    }

    [Fact]
    public async Task The_spill_file_is_deleted_when_the_client_disconnects_mid_body()
    {
        await using var host = await StartAsync();
        var budget = Budget(host);
        var raw = Encoding.UTF8.GetBytes(Message(2 * 1024 * 1024).Raw);

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(host.BaseAddress.Host, host.BaseAddress.Port, Timeout);
        var head = $"POST /api/v1/messages HTTP/1.1\r\nHost: {host.BaseAddress.Authority}\r\nAuthorization: Bearer {HttpApiHost.Key}\r\n"
            + $"Content-Type: message/rfc822\r\nContent-Length: {raw.Length}\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(head), Timeout);
        await socket.SendAsync(raw.AsMemory(0, raw.Length / 2), Timeout);

        // Half of it is in: past the threshold, so in a spill file. Then the client goes away.
        await budget.WaitUntilAsync(_ => SpillFiles().Length == 1, Timeout);
        socket.Close();

        // The file is closed (deleted) before the buffer's bytes are released.
        await budget.WaitUntilAsync(inUse => inUse == 0, Timeout);
        Assert.Empty(SpillFiles());
        Assert.True(host.Spool.Stored.IsEmpty);
    }

    /// <summary>A message/rfc822 body of <paramref name="length"/> octets of unknown length (sent chunked).</summary>
    private sealed class GeneratedMessageStream(long length) : Stream
    {
        private static readonly byte[] Head = Encoding.ASCII.GetBytes("From: a@example.com\r\nTo: b@example.org\r\n\r\n");
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            count = (int)Math.Min(count, length - _position);
            for (var i = 0; i < count; i++, _position++)
            {
                buffer[offset + i] = _position < Head.Length ? Head[_position] : (_position % 80) == 79 ? (byte)'\n' : (byte)'x';
            }

            return count;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
