using System.Net;
using System.Net.Sockets;

namespace MailMesh.Testing.Infrastructure;

/// <summary>TCP ports on loopback addresses.</summary>
public static class LoopbackPort
{
    /// <summary>
    /// A TCP port nothing listens on at the moment of asking (on 127.0.0.1 unless <paramref name="address"/> says
    /// otherwise): for a process that must be told its port before it starts, or for a dependency that must refuse
    /// connections at once.
    /// </summary>
    public static int Free(IPAddress? address = null)
    {
        using var listener = new TcpListener(address ?? IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
