using MailMesh.ServiceDefaults.Security;
using Microsoft.AspNetCore.Builder;

namespace MailMesh.ServiceDefaults;

/// <summary>
/// The whole life of a MailMesh service process: defaults, the service's own registrations, the bus, the default
/// endpoints, run. A configuration error at any step stops start-up with one line naming the key (exit code 2).
/// </summary>
public static class ServiceHost
{
    public static async Task<int> RunAsync(
        string[] args,
        string serviceName,
        Action<WebApplicationBuilder> configure,
        Action<WebApplication>? map = null,
        BusTransport transport = BusTransport.RabbitMq)
    {
        // "new-api-key": print a random API key and the hash to configure for it (admin or submission key).
        if (args is [NewApiKeyCommand.Verb, ..])
        {
            return await NewApiKeyCommand.RunAsync(Console.Out);
        }

        // "hash-password": read a password from stdin and print its PasswordHash value (SMTP AUTH users, mailbox accounts).
        if (args is [PasswordHashCommand.Verb, ..])
        {
            return await PasswordHashCommand.RunAsync(Console.In, Console.Out, Console.Error);
        }

        try
        {
            await using var app = Create(args, serviceName, configure, map, transport);
            await app.RunAsync();
            return 0;
        }
        catch (Exception ex) when (ConfigurationErrors.TryDescribe(ex, out var message))
        {
            await Console.Error.WriteLineAsync($"{serviceName}: configuration error: {message}");
            return 2;
        }
    }

    /// <summary>Builds a service host without running it: what <see cref="RunAsync"/> runs, and what tests start.</summary>
    public static WebApplication Create(
        string[] args,
        string serviceName,
        Action<WebApplicationBuilder> configure,
        Action<WebApplication>? map = null,
        BusTransport transport = BusTransport.RabbitMq)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults(serviceName);
        configure(builder);
        builder.AddMailMeshBus(transport);
        var app = builder.Build();
        app.MapDefaultEndpoints();
        map?.Invoke(app);
        return app;
    }
}
