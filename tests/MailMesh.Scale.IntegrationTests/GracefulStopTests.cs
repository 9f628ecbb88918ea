using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailMesh.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Scale.IntegrationTests;

/// <summary>
/// SIGTERM to a service process is a graceful stop (what Kubernetes sends before it kills a pod): Ingress stops
/// listening, lets the mail transaction in progress end with its 250 and closes idle sessions with 421 4.3.2; Delivery
/// finishes the SMTP transaction in progress. Nothing accepted is lost, and the process exits 0 within its grace period.
/// </summary>
public sealed class GracefulStopTests
{
    private static readonly TimeSpan GracePeriod = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Ingress_stops_listening_finishes_the_open_transaction_and_exits_0()
    {
        await using var cluster = await Cluster.CreateAsync();
        await cluster.StartAsync(MeshService.Queue);
        await cluster.StartAsync(MeshService.Policy);
        var port = LoopbackPort.Free();
        var ingress = await cluster.StartProcessAsync(MeshService.Ingress, new Dictionary<string, string>
        {
            ["Ingress:Listen"] = $"127.0.0.1:{port}",
            ["Ingress:ShutdownGracePeriod"] = GracePeriod.ToString("c", CultureInfo.InvariantCulture),
        });
        var endpoint = new IPEndPoint(IPAddress.Loopback, port);

        // One session in the middle of a mail transaction (content half sent), one idle after EHLO.
        using var busy = await RawSmtp.ConnectAsync(endpoint);
        await busy.ExpectAsync("250", "EHLO client.test");
        await busy.ExpectAsync("250", "MAIL FROM:<sender@origin.test>");
        await busy.ExpectAsync("250", "RCPT TO:<someone@dest.test>");
        await busy.ExpectAsync("354", "DATA");
        await busy.SendAsync("Subject: drained\r\nMessage-ID: <drain@origin.test>\r\n\r\nfirst half\r\n");
        using var idle = await RawSmtp.ConnectAsync(endpoint);
        await idle.ExpectAsync("250", "EHLO idle.test");

        await ingress.TerminateAsync();

        // The idle session is closed at once with 421 4.3.2 (RFC 5321 §3.8), unprompted.
        var closing = await idle.ReadReplyAsync();
        Assert.StartsWith("421 4.3.2", closing, StringComparison.Ordinal);

        // New connections are refused: Kestrel has closed its listener.
        await WaitForRefusedAsync(endpoint);

        // The transaction in progress still ends with 250, after the spool commit.
        var accepted = await busy.ExpectAsync("250", "second half\r\n.");
        var id = Guid.Parse(accepted[(accepted.LastIndexOf(' ') + 1)..]);
        var after = await busy.SendAndReadAsync("QUIT");
        Assert.True(after.StartsWith("221", StringComparison.Ordinal) || after.StartsWith("421 4.3.2", StringComparison.Ordinal), after);

        Assert.Equal(0, await ingress.WaitForExitAsync(GracePeriod));
        var status = await cluster.Spool.GetStatusAsync(id, CancellationToken.None);
        Assert.NotNull(status);
        Assert.Equal(["someone@dest.test"], status.Recipients.Select(r => r.Address));
    }

    [Fact]
    public async Task Delivery_finishes_the_transaction_in_progress_and_exits_0()
    {
        await using var cluster = await Cluster.CreateAsync();

        // A slow destination: the reply to the end of data comes 3 s after the final dot.
        cluster.Destination.DataReplyDelay = TimeSpan.FromSeconds(3);
        await cluster.StartAsync(MeshService.Queue);
        await cluster.StartAsync(MeshService.Policy);
        await cluster.StartAsync(MeshService.Dns);
        var delivery = await cluster.StartProcessAsync(MeshService.Delivery, new Dictionary<string, string>
        {
            ["Delivery:ShutdownGracePeriod"] = GracePeriod.ToString("c", CultureInfo.InvariantCulture),
        });
        var ingress = await cluster.StartAsync(MeshService.Ingress);
        var endpoint = ingress.Services.GetRequiredService<MailMesh.Ingress.IngressEndpoints>().Smtp[0];

        Guid id;
        using (var client = await RawSmtp.ConnectAsync(endpoint))
        {
            await client.ExpectAsync("250", "EHLO client.test");
            await client.ExpectAsync("250", "MAIL FROM:<sender@origin.test>");
            await client.ExpectAsync("250", "RCPT TO:<someone@dest.test>");
            await client.ExpectAsync("354", "DATA");
            var reply = await client.ExpectAsync("250", "Subject: in flight\r\n\r\nslow destination\r\n.");
            id = Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
            await client.ExpectAsync("221", "QUIT");
        }

        // SIGTERM once Delivery is inside the transaction (the sink has its DATA command; its reply is 3 s away).
        await WaitUntilAsync(() => cluster.Destination.Commands.Any(c => c.EndsWith(" DATA", StringComparison.Ordinal)), "Delivery never reached DATA");
        await delivery.TerminateAsync();

        // The transaction completes: the sink has the message once, the spool says Delivered, and the process exits 0.
        Assert.Equal(0, await delivery.WaitForExitAsync(GracePeriod));
        await HorizontalScaleTests.WaitForDeliveredAsync(cluster.Spool, id);
        var status = await cluster.Spool.GetStatusAsync(id, CancellationToken.None);
        Assert.Equal(1, status!.Recipients.Single().Attempts);
        Assert.Single(cluster.Destination.Messages);
        Assert.Contains("Subject: in flight", Encoding.ASCII.GetString(cluster.Destination.Messages[0].Data), StringComparison.Ordinal);
    }

    private static async Task WaitForRefusedAsync(IPEndPoint endpoint)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        while (true)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(endpoint);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
            {
                return;
            }

            // Accepted in the instant before the listener closed: such a session is answered 421 4.3.2, never 220. A
            // connection the kernel had completed but Kestrel had not yet taken from the accept backlog is reset when
            // the listening socket closes (no process ever owned it): that is a refusal too, and the client retries.
            using var late = new RawSmtp(socket);
            string greeting;
            try
            {
                greeting = await late.ReadReplyAsync();
            }
            catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
            {
                return;
            }

            Assert.StartsWith("421 4.3.2", greeting, StringComparison.Ordinal);
            Assert.True(DateTimeOffset.UtcNow < deadline, "the SMTP listener still accepts connections");
            await Task.Delay(50);
        }
    }

    private static Task WaitUntilAsync(Func<bool> condition, string failure) => Eventually.WaitUntilAsync(condition, Patience, failure);
}
