using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Options;

namespace MailMesh.ServiceDefaults;

/// <summary>Turns option binding and validation failures into one line that names the configuration key.</summary>
public static class ConfigurationErrors
{
    public static bool TryDescribe(Exception exception, [NotNullWhen(true)] out string? message)
    {
        for (var ex = exception; ex is not null; ex = ex.InnerException)
        {
            switch (ex)
            {
                case OptionsValidationException validation:
                    message = string.Join("; ", validation.Failures);
                    return true;
                case InvalidOperationException when ex.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal):
                    message = ex.Message;
                    return true;
                case ConfigurationKeyException key:
                    message = key.Message;
                    return true;
            }
        }

        if (exception is AggregateException aggregate && aggregate.InnerExceptions.Count > 0)
        {
            return TryDescribe(aggregate.InnerExceptions[0], out message);
        }

        message = null;
        return false;
    }
}

/// <summary>Thrown where a configuration value is read outside the options system; the message names the key.</summary>
public sealed class ConfigurationKeyException(string key, string problem, Exception? innerException = null)
    : Exception($"{key}: {problem}", innerException)
{
    public string Key { get; } = key;
}
