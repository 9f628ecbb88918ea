using MailMesh.Ingress.Acceptance;
using MailMesh.Ingress.Auth;
using MailMesh.Ingress.Tls;
using MailMesh.ServiceDefaults.Tls;
using MailMesh.Smtp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress;

/// <summary>
/// Kestrel hands every SMTP connection here (with the kind of listener it arrived on). Connection limits are applied
/// before anything else: over <see cref="IngressOptions.MaxConnections"/> or
/// <see cref="IngressOptions.MaxConnectionsPerIp"/> the client gets 421 4.7.0 and the connection is closed (RFC 5321
/// §3.8); once the host is stopping, with 421 4.3.2 (see <see cref="IngressShutdown"/>). Otherwise each connection is
/// an <see cref="SmtpSession"/> with its own DI scope.
/// </summary>
internal sealed class SmtpConnectionHandler(
    IServiceScopeFactory scopes,
    IOptions<IngressOptions> options,
    IOptions<IngressTlsOptions> tls,
    IOptions<IngressAuthOptions> auth,
    MessageAcceptor acceptor,
    ServerCertificate certificate,
    Authenticator authenticator,
    ConnectionLimiter limiter,
    IngressMetrics metrics,
    Memory.MessageBufferBudget budget,
    TimeProvider time,
    IngressShutdown shutdown,
    ILogger<SmtpSession> logger)
{
    private readonly SmtpSessionServices _services = new(options.Value, tls.Value, auth.Value, acceptor, certificate, authenticator, metrics, budget, time, logger);

    public async Task OnConnectedAsync(ConnectionContext connection, ListenerKind kind)
    {
        var client = (connection.RemoteEndPoint as System.Net.IPEndPoint)?.Address;
        if (shutdown.Draining.IsCancellationRequested)
        {
            // Accepted in the instant before Kestrel closed its listeners: RFC 5321 §3.1 allows 421 instead of 220.
            await RefuseAsync(connection, SmtpReplies.ServiceNotAvailable(options.Value.HostName, EnhancedStatusCodes.SystemNotAccepting, "Service shutting down"));
            return;
        }

        using var lease = limiter.TryEnter(client, out var limit);
        if (lease is null)
        {
            Log.ConnectionRefused(logger, client?.ToString() ?? "unknown", limit!);
            metrics.ConnectionRefused(limit!);
            await RefuseAsync(connection, SmtpReplies.TooManyConnections(options.Value.HostName));
            return;
        }

        await using var scope = scopes.CreateAsyncScope();
        var session = new SmtpSession(connection, kind, _services, scope.ServiceProvider.GetRequiredService<IngressPolicy>(), shutdown);
        await session.RunAsync();
    }

    private async Task RefuseAsync(ConnectionContext connection, SmtpReply reply)
    {
        try
        {
            // On the implicit-TLS port the client expects a handshake; a clear-text 421 is still the most useful answer.
            reply.WriteTo(connection.Transport.Output);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), time);
            await connection.Transport.Output.FlushAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException or ConnectionResetException)
        {
            Log.ConnectionLost(logger, connection.RemoteEndPoint as System.Net.IPEndPoint, ex);
        }
        finally
        {
            await connection.Transport.Input.CompleteAsync();
            await connection.Transport.Output.CompleteAsync();
        }
    }
}
