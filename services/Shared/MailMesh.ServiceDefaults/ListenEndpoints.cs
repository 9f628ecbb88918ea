using System.Net;

namespace MailMesh.ServiceDefaults;

/// <summary>Parses "host:port" endpoint lists for the protocol listeners (SMTP, POP3, IMAP).</summary>
public static class ListenEndpoints
{
    public static bool TryParseList(string? value, out List<IPEndPoint> endpoints, out string error)
    {
        endpoints = [];
        error = string.Empty;
        if (string.IsNullOrWhiteSpace(value))
        {
            error = "at least one endpoint (host:port) is required";
            return false;
        }

        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!TryParse(part, out var endpoint))
            {
                error = $"'{part}' is not an endpoint (host:port)";
                return false;
            }

            endpoints.Add(endpoint);
        }

        if (endpoints.Count == 0)
        {
            error = "at least one endpoint (host:port) is required";
            return false;
        }

        return true;
    }

    /// <summary>"127.0.0.1:25", "[::1]:25", "0.0.0.0:25", "*:25" (any IPv4 and IPv6), "localhost:25" (loopback).</summary>
    public static bool TryParse(string text, out IPEndPoint endpoint)
    {
        endpoint = null!;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) || port > IPEndPoint.MaxPort)
        {
            return false;
        }

        var host = text[..colon];
        if (host is "*" or "+")
        {
            endpoint = new IPEndPoint(IPAddress.IPv6Any, port);
            return true;
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            endpoint = new IPEndPoint(IPAddress.Loopback, port);
            return true;
        }

        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }
        else if (host.Contains(':', StringComparison.Ordinal))
        {
            // An IPv6 address needs brackets to be told apart from the port.
            return false;
        }

        if (!IPAddress.TryParse(host, out var address))
        {
            return false;
        }

        endpoint = new IPEndPoint(address, port);
        return true;
    }
}
