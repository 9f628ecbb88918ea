using MailMesh.Ingress.Acceptance;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress;

/// <summary>Kestrel hands every SMTP connection here; each one is an <see cref="SmtpSession"/> with its own DI scope.</summary>
internal sealed class SmtpConnectionHandler(
    IServiceScopeFactory scopes,
    IOptions<IngressOptions> options,
    MessageAcceptor acceptor,
    IngressMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<SmtpSession> logger) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        await using var scope = scopes.CreateAsyncScope();
        var session = new SmtpSession(
            connection,
            options.Value,
            scope.ServiceProvider.GetRequiredService<IngressPolicy>(),
            acceptor,
            metrics,
            time,
            logger,
            lifetime.ApplicationStopping);
        await session.RunAsync();
    }
}
