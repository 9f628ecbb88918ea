using System.Net;
using System.Net.Sockets;

namespace MailMesh.Testing.Hosting;

/// <summary>TCP ports on 127.0.0.1.</summary>
public static class LoopbackPort
{
    /// <summary>
    /// A port nothing listens on at the moment of asking: for a process that must be told its port before it starts,
    /// or for a dependency that must refuse connections at once.
    /// </summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
