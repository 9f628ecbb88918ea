using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Logging;

namespace MailMesh.ServiceDefaults;

/// <summary>
/// The log levels every service starts with: MailMesh's own start-up, configuration and failure logs at Information
/// and above (per-message events are Debug), the libraries' chatter (Npgsql logs every command it executes at
/// Information, MassTransit every receive endpoint and message) at Warning. They are the lowest-priority
/// configuration source, so <c>Logging:LogLevel:&lt;category&gt;</c> from appsettings, environment
/// (<c>Logging__LogLevel__Npgsql=Information</c>) or the command line overrides each.
/// </summary>
public static class DefaultLogLevels
{
    /// <summary>Category prefix (as in <c>Logging:LogLevel</c>) to its default minimum level.</summary>
    public static IReadOnlyDictionary<string, LogLevel> Categories { get; } = new Dictionary<string, LogLevel>(StringComparer.Ordinal)
    {
        ["Default"] = LogLevel.Information,
        ["Microsoft.AspNetCore"] = LogLevel.Warning,
        ["Microsoft.Hosting.Lifetime"] = LogLevel.Information,
        ["System.Net.Http.HttpClient"] = LogLevel.Warning,
        ["Npgsql"] = LogLevel.Warning,
        ["MassTransit"] = LogLevel.Warning,
    };

    /// <summary>Adds <see cref="Categories"/> as the first (lowest-priority) configuration source.</summary>
    public static void AddTo(IConfigurationBuilder configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        configuration.Sources.Insert(0, new MemoryConfigurationSource
        {
            InitialData = Categories.Select(pair =>
                KeyValuePair.Create("Logging:LogLevel:" + pair.Key, (string?)pair.Value.ToString())),
        });
    }
}
