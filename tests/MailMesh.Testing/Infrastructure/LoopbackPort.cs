using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace MailMesh.Testing.Infrastructure;

/// <summary>TCP ports on loopback addresses.</summary>
public static class LoopbackPort
{
    // Ports below the kernel's ephemeral range: a port the kernel hands out for port 0 (or for any outgoing connection,
    // such as a replica's RabbitMQ or PostgreSQL connection) can be taken again between the asking and the binding, as a
    // CI run saw ("address already in use"); a port outside that range is only ever taken by someone who asked for it.
    private const int FirstCandidate = 20000;

    // Ports already handed out by this process: two calls in a row (an SMTP and an HTTP port for one process) must not
    // return the same free port, since neither is bound until the process they are for starts (a fresh CI run saw it).
    private static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A TCP port nothing listens on at the moment of asking (on 127.0.0.1 unless <paramref name="address"/> says
    /// otherwise), chosen at random below the ephemeral port range so that no outgoing connection takes it before the
    /// caller binds it: for a process that must be told its port before it starts, or for a dependency that must refuse
    /// connections at once.
    /// </summary>
    public static int Free(IPAddress? address = null)
    {
        var lastCandidate = EphemeralRangeStart() - 1;
        for (var attempt = 0; attempt < 200 && lastCandidate > FirstCandidate; attempt++)
        {
            var port = Random.Shared.Next(FirstCandidate, lastCandidate + 1);
            lock (HandedOut)
            {
                if (!HandedOut.Contains(port) && TryBind(address ?? IPAddress.Loopback, port))
                {
                    HandedOut.Add(port);
                    return port;
                }
            }
        }

        // A machine whose ephemeral range starts low: fall back to the kernel's choice.
        using var listener = new TcpListener(address ?? IPAddress.Loopback, 0);
        listener.Start();
        var chosen = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        lock (HandedOut)
        {
            HandedOut.Add(chosen);
        }

        return chosen;
    }

    private static bool TryBind(IPAddress address, int port)
    {
        try
        {
            using var listener = new TcpListener(address, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>The first port of the kernel's ephemeral range (Linux default 32768).</summary>
    private static int EphemeralRangeStart()
    {
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(range[0], CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32768;
        }
    }
}
