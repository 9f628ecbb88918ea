using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MailMesh.ServiceDefaults;

/// <summary>
/// The HTTP endpoints of a service that also listens for a mail protocol on Kestrel (Ingress's SMTP, Mailbox's POP3 and
/// IMAP). Once any endpoint is configured in code, Kestrel ignores the "Urls" setting, so the HTTP endpoints (health,
/// metrics, API) are re-created from it here; otherwise adding the protocol listeners would silently turn HTTP off.
/// Idempotent: in Standalone several services call it, and the endpoints are added once.
/// </summary>
public static class KestrelHttpEndpoints
{
    /// <summary>The HTTP endpoint of a MailMesh service when "Urls" is not set.</summary>
    public const string DefaultUrls = "http://127.0.0.1:8080";

    /// <summary>
    /// Takes "Urls" and "HTTP_PORTS" from the configuration (so Kestrel does not also see them and warn that explicit
    /// listeners override them) and binds them in code next to the service's own listeners.
    /// </summary>
    public static IHostApplicationBuilder AddKestrelHttpEndpoints(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var configuration = builder.Configuration;

        // The first call captures the settings; later ones see them emptied and register nothing new (TryAdd*).
        builder.Services.TryAddSingleton(new CapturedUrls(configuration[WebHostDefaults.ServerUrlsKey], configuration[WebHostDefaults.HttpPortsKey]));
        configuration[WebHostDefaults.ServerUrlsKey] = string.Empty;
        configuration[WebHostDefaults.HttpPortsKey] = string.Empty;
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<KestrelServerOptions>, ConfigureHttp>());
        return builder;
    }

    private sealed record CapturedUrls(string? Urls, string? HttpPorts);

    private sealed class ConfigureHttp(CapturedUrls urls) : IConfigureOptions<KestrelServerOptions>
    {
        public void Configure(KestrelServerOptions options) => AddHttp(options, urls.Urls, urls.HttpPorts);
    }

    /// <summary>Adds the HTTP endpoints named by "Urls" (semicolon-separated), or "http_ports", or the default.</summary>
    internal static void AddHttp(KestrelServerOptions kestrel, string? urls, string? httpPorts)
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
