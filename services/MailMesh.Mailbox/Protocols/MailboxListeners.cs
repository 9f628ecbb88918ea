using MailMesh.Mailbox.Imap;
using MailMesh.Mailbox.Pop3;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Tls;
using MailMesh.Storage;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MailMesh.Mailbox.Protocols;

/// <summary>Which protocol a listener speaks, and whether TLS starts with the first octet (RFC 8314).</summary>
internal enum MailProtocol
{
    Pop3,
    Pop3s,
    Imap,
    Imaps,
}

/// <summary>The endpoints the POP3 and IMAP listeners are bound to (port 0 resolved), for tests and logs.</summary>
internal sealed class ProtocolEndpoints
{
    private readonly List<(MailProtocol Protocol, ListenOptions Listener)> _listeners = [];

    public void Add(MailProtocol protocol, ListenOptions listener)
    {
        lock (_listeners)
        {
            _listeners.Add((protocol, listener));
        }
    }

    /// <summary>The bound endpoint of the first listener of <paramref name="protocol"/>, once the server has started.</summary>
    public System.Net.IPEndPoint? Get(MailProtocol protocol)
    {
        lock (_listeners)
        {
            return _listeners.Where(l => l.Protocol == protocol).Select(l => l.Listener.IPEndPoint).FirstOrDefault();
        }
    }
}

/// <summary>
/// Kestrel hands every POP3 and IMAP connection here. Over <see cref="MailboxProtocolOptions.MaxConnections"/> a client
/// gets the protocol's refusal (POP3 "-ERR [SYS/TEMP]", IMAP "* BYE") and is closed; otherwise the connection runs as a
/// session. On an implicit-TLS listener the handshake comes first.
/// </summary>
internal sealed class MailConnectionHandler(
    IOptions<MailboxProtocolOptions> options,
    IOptions<MailboxTlsOptions> tls,
    [FromKeyedServices(MailboxProtocolExtensions.CertificateKey)] ServerCertificate certificate,
    MailboxLogin login,
    IMailStore store,
    MailboxProtocolMetrics metrics,
    TimeProvider time,
    ILogger<MailConnectionHandler> logger)
{
    private readonly Pop3Services _pop3 = new(options.Value, tls.Value, certificate, login, store, time, logger);
    private readonly ImapServices _imap = new(options.Value, tls.Value, certificate, login, store, time, logger);
    private int _open;

    public async Task OnConnectedAsync(ConnectionContext context, MailProtocol protocol)
    {
        await using var connection = new MailConnection(context, time);
        var name = protocol is MailProtocol.Pop3 or MailProtocol.Pop3s ? "POP3" : "IMAP";
        try
        {
            if (Interlocked.Increment(ref _open) > options.Value.MaxConnections)
            {
                MailboxProtocolLog.ConnectionRefused(logger, name, connection.Client, "too many connections");
                var refusal = name == "POP3" ? "-ERR [SYS/TEMP] Too many connections\r\n"u8 : "* BYE [UNAVAILABLE] Too many connections\r\n"u8;
                await connection.Output.WriteAsync(refusal.ToArray(), context.ConnectionClosed);
                return;
            }

            if (protocol is MailProtocol.Pop3s or MailProtocol.Imaps
                && !await connection.StartTlsAsync(certificate, tls.Value.HandshakeTimeout, context.ConnectionClosed))
            {
                return;
            }

            var protocolName = name == "POP3" ? "pop3" : "imap";
            metrics.SessionStarted(protocolName);
            using var ended = new SessionEnd(metrics, protocolName);
            if (name == "POP3")
            {
                await new Pop3Session(connection, _pop3).RunAsync();
            }
            else
            {
                await new ImapSession(connection, _imap).RunAsync();
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionResetException)
        {
            MailboxProtocolLog.ConnectionLost(logger, name, connection.Client, ex);
        }
        catch (Exception ex)
        {
            // A bug or a store failure must cost one session, never the listener.
            MailboxProtocolLog.SessionFailed(logger, name, connection.Client, ex);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    }
}

/// <summary>Counts a session as ended however it ends.</summary>
internal readonly struct SessionEnd(MailboxProtocolMetrics metrics, string protocol) : IDisposable
{
    public void Dispose() => metrics.SessionEnded(protocol);
}

public static class MailboxProtocolExtensions
{
    /// <summary>The DI key of the Mailbox's certificate (Ingress's is registered without a key; Standalone has both).</summary>
    public const string CertificateKey = "Mailbox:Tls";

    /// <summary>
    /// Registers the POP3 and IMAP servers (issue 9): listeners on Kestrel (Mailbox:Pop3Listen, Pop3sListen, ImapListen,
    /// ImapsListen) next to the HTTP endpoints, the certificate (Mailbox:Tls) and the login throttle (Mailbox:Auth).
    /// Needs an <see cref="IMailStore"/>.
    /// </summary>
    public static IHostApplicationBuilder AddMailboxProtocols(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddValidatedOptions<MailboxProtocolOptions>();
        services.AddValidatedOptions<MailboxTlsOptions>();
        services.AddValidatedOptions<MailboxAuthOptions>();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ProtocolEndpoints>();
        services.TryAddSingleton<MailboxLogin>();
        services.TryAddSingleton<MailConnectionHandler>();
        services.AddMetrics();
        services.TryAddSingleton<MailboxProtocolMetrics>();
        services.TryAddKeyedSingleton<ServerCertificate>(CertificateKey, (sp, _) => new ServerCertificate(
            sp.GetRequiredService<IOptions<MailboxTlsOptions>>().Value,
            sp.GetRequiredService<IOptions<MailboxProtocolOptions>>().Value.HostName,
            MailboxTlsOptions.SectionName,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<ServerCertificate>>()));

        builder.AddKestrelHttpEndpoints();
        services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<MailboxProtocolOptions>, ProtocolEndpoints>((kestrel, options, endpoints) =>
            {
                var o = options.Value;
                Add(kestrel, "Mailbox:Pop3Listen", o.Pop3Listen, MailProtocol.Pop3, endpoints);
                Add(kestrel, "Mailbox:Pop3sListen", o.Pop3sListen, MailProtocol.Pop3s, endpoints);
                Add(kestrel, "Mailbox:ImapListen", o.ImapListen, MailProtocol.Imap, endpoints);
                Add(kestrel, "Mailbox:ImapsListen", o.ImapsListen, MailProtocol.Imaps, endpoints);
            });
        return builder;
    }

    private static void Add(KestrelServerOptions kestrel, string key, string? value, MailProtocol protocol, ProtocolEndpoints endpoints)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return;
        }

        if (!ListenEndpoints.TryParseList(value, out var list, out var error))
        {
            throw new ConfigurationKeyException(key, error);
        }

        foreach (var endpoint in list)
        {
            kestrel.Listen(endpoint, listener =>
            {
                listener.Protocols = HttpProtocols.None;
                var handler = listener.ApplicationServices.GetRequiredService<MailConnectionHandler>();
                listener.Run(connection => handler.OnConnectedAsync(connection, protocol));
                endpoints.Add(protocol, listener);
            });
        }
    }
}
