using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MailMesh.Ingress;

/// <summary>
/// The SMTP endpoints Ingress listens on. Kestrel updates each listener's endpoint when it binds, so after the host
/// has started <see cref="Smtp"/> holds the actual ports (port 0 in configuration becomes the port the OS chose).
/// </summary>
public sealed class IngressEndpoints
{
    private readonly List<ListenOptions> _smtp = [];
    private readonly Lock _lock = new();

    /// <summary>The SMTP endpoints, with the bound ports once the server has started.</summary>
    public IReadOnlyList<IPEndPoint> Smtp
    {
        get
        {
            lock (_lock)
            {
                return [.. _smtp.Select(l => l.IPEndPoint).OfType<IPEndPoint>()];
            }
        }
    }

    internal void Add(ListenOptions listener)
    {
        lock (_lock)
        {
            _smtp.Add(listener);
        }
    }
}
