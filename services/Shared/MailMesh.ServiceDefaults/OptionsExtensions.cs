using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MailMesh.ServiceDefaults;

/// <summary>An options class that checks itself; each failure message starts with the full key, e.g. "Queue:MaxAge: must be positive".</summary>
public interface IValidatedOptions
{
    static abstract string SectionName { get; }

    IEnumerable<string> Validate();
}

public static class OptionsExtensions
{
    /// <summary>Binds <typeparamref name="T"/> to its section and validates it when the host starts; idempotent.</summary>
    public static OptionsBuilder<T> AddValidatedOptions<T>(this IServiceCollection services)
        where T : class, IValidatedOptions
    {
        // Once per options type, however many services of one host (Standalone) register it: a second bind would add
        // every list entry again (and validation would then report each configured key as a duplicate).
        if (services.Any(d => d.ServiceType == typeof(IValidateOptions<T>) && d.ImplementationType == typeof(SelfValidation<T>)))
        {
            return services.AddOptions<T>();
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<T>, SelfValidation<T>>());
        // BindConfiguration's two parts, with a bind that names the key when the configuration has the wrong shape.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IOptionsChangeTokenSource<T>, ConfigurationChangeTokenSource<T>>(sp =>
            new ConfigurationChangeTokenSource<T>(Options.DefaultName, sp.GetRequiredService<IConfiguration>().GetSection(T.SectionName))));
        return services.AddOptions<T>()
            .Configure<IConfiguration>((options, configuration) => ConfigurationShape.Bind(configuration.GetSection(T.SectionName), options))
            .ValidateOnStart();
    }

    private sealed class SelfValidation<T> : IValidateOptions<T>
        where T : class, IValidatedOptions
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            var failures = options.Validate().ToList();
            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }
    }
}
