using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MailMesh.Ingress;

/// <summary>
/// The SMTP endpoints Ingress listens on. Kestrel updates each listener's endpoint when it binds, so after the host
/// has started <see cref="Smtp"/> holds the actual ports (port 0 in configuration becomes the port the OS chose).
/// </summary>
public sealed class IngressEndpoints
{
    private readonly List<(ListenOptions Listener, ListenerKind Kind)> _smtp = [];
    private readonly Lock _lock = new();

    /// <summary>The SMTP (relay/MX, Ingress:Listen) endpoints, with the bound ports once the server has started.</summary>
    public IReadOnlyList<IPEndPoint> Smtp => Get(ListenerKind.Relay);

    /// <summary>The submission endpoints (Ingress:SubmissionListen).</summary>
    public IReadOnlyList<IPEndPoint> Submission => Get(ListenerKind.Submission);

    /// <summary>The implicit-TLS submission endpoints (Ingress:ImplicitTlsListen).</summary>
    public IReadOnlyList<IPEndPoint> ImplicitTls => Get(ListenerKind.ImplicitTls);

    private IReadOnlyList<IPEndPoint> Get(ListenerKind kind)
    {
        lock (_lock)
        {
            return [.. _smtp.Where(l => l.Kind == kind).Select(l => l.Listener.IPEndPoint).OfType<IPEndPoint>()];
        }
    }

    internal void Add(ListenOptions listener, ListenerKind kind)
    {
        lock (_lock)
        {
            _smtp.Add((listener, kind));
        }
    }
}
