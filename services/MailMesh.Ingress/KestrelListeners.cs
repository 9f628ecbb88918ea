using MailMesh.ServiceDefaults;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MailMesh.Ingress;

/// <summary>
/// The SMTP listeners of Ingress on Kestrel. The HTTP endpoints (health, metrics, API) are re-created next to them by
/// <see cref="KestrelHttpEndpoints"/>: once any endpoint is configured in code, Kestrel ignores "Urls".
/// </summary>
internal static class KestrelListeners
{
    public static void AddSmtp(KestrelServerOptions kestrel, IngressOptions options, IngressEndpoints endpoints)
    {
        Add(kestrel, "Ingress:Listen", options.Listen, ListenerKind.Relay, endpoints);
        if (!string.IsNullOrWhiteSpace(options.SubmissionListen))
        {
            Add(kestrel, "Ingress:SubmissionListen", options.SubmissionListen, ListenerKind.Submission, endpoints);
        }

        if (!string.IsNullOrWhiteSpace(options.ImplicitTlsListen))
        {
            Add(kestrel, "Ingress:ImplicitTlsListen", options.ImplicitTlsListen, ListenerKind.ImplicitTls, endpoints);
        }
    }

    private static void Add(KestrelServerOptions kestrel, string key, string? value, ListenerKind kind, IngressEndpoints endpoints)
    {
        if (!ListenEndpoints.TryParseList(value, out var list, out var error))
        {
            throw new ConfigurationKeyException(key, error);
        }

        foreach (var endpoint in list)
        {
            kestrel.Listen(endpoint, listener =>
            {
                listener.Protocols = HttpProtocols.None;
                var handler = listener.ApplicationServices.GetRequiredService<SmtpConnectionHandler>();
                listener.Run(connection => handler.OnConnectedAsync(connection, kind));
                endpoints.Add(listener, kind);
            });
        }
    }
}
