using System.Globalization;
using System.Net;
using MailMesh.ServiceDefaults;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MailMesh.Ingress;

/// <summary>
/// Kestrel listeners of Ingress. Once any endpoint is configured in code, Kestrel ignores the "Urls" setting, so the
/// HTTP endpoints (health, metrics) are re-created from it here; otherwise adding the SMTP listeners would silently
/// turn HTTP off.
/// </summary>
internal static class KestrelListeners
{
    /// <summary>The HTTP endpoint of a MailMesh service when "Urls" is not set.</summary>
    public const string DefaultUrls = "http://127.0.0.1:8080";

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

    /// <summary>Adds the HTTP endpoints named by "Urls" (semicolon-separated), or "http_ports", or the default.</summary>
    public static void AddHttp(KestrelServerOptions kestrel, string? urls, string? httpPorts)
    {
        if (string.IsNullOrWhiteSpace(urls) && !string.IsNullOrWhiteSpace(httpPorts))
        {
            foreach (var port in httpPorts.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number > IPEndPoint.MaxPort)
                {
                    throw new ConfigurationKeyException("HTTP_PORTS", $"'{port}' is not a port number");
                }

                kestrel.ListenAnyIP(number);
            }

            return;
        }

        foreach (var url in (string.IsNullOrWhiteSpace(urls) ? DefaultUrls : urls).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // BindingAddress understands the ASP.NET forms: http://host:port, http://*:port, http://+:port, http://localhost:port.
            BindingAddress address;
            try
            {
                address = BindingAddress.Parse(url);
            }
            catch (FormatException)
            {
                throw new ConfigurationKeyException("Urls", $"'{url}' is not a URL");
            }

            if (!string.Equals(address.Scheme, "http", StringComparison.OrdinalIgnoreCase) || address.Port < 0)
            {
                throw new ConfigurationKeyException("Urls", $"'{url}' must be http://host:port (TLS terminates in front of the service)");
            }

            if (address.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
            {
                kestrel.ListenLocalhost(address.Port);
            }
            else if (address.Host is "*" or "+" or "[::]")
            {
                kestrel.ListenAnyIP(address.Port);
            }
            else if (IPAddress.TryParse(address.Host.Trim('[', ']'), out var ip))
            {
                kestrel.Listen(ip, address.Port);
            }
            else
            {
                // A host name binds to every address, as Kestrel does for Urls.
                kestrel.ListenAnyIP(address.Port);
            }
        }
    }
}
