using MailMesh.Policy.Content;
using MailMesh.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MailMesh.Policy.Scanning;

internal static class ScanningExtensions
{
    /// <summary>Policy:Rspamd and Policy:Clamd, validated at start, and their checks as <see cref="IContentCheck"/>
    /// (each does nothing until Enabled).</summary>
    public static IServiceCollection AddScanners(this IServiceCollection services)
    {
        services.AddValidatedOptions<RspamdOptions>();
        services.AddValidatedOptions<ClamdOptions>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IContentCheck, ClamdCheck>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IContentCheck, RspamdCheck>());
        return services;
    }
}
