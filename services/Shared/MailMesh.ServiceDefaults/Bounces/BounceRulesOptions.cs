using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MailMesh.ServiceDefaults.Bounces;

/// <summary>
/// Bounce classification rules (section "Delivery:BounceRules", <c>docs/delivery.md</c>): Delivery classifies every reply
/// with them, and Queue the asynchronous bounces that come back to the return path.
/// </summary>
public sealed class BounceRulesOptions : IValidatedOptions
{
    /// <summary>The configuration section.</summary>
    public static string SectionName => "Delivery:BounceRules";

    /// <summary>
    /// The operator's rule files (same JSON format as the shipped <c>bounce-rules.json</c>), applied before the shipped
    /// rules, the first file first. Each is read and checked at start-up: a missing or bad file stops it.
    /// </summary>
    public List<string> Files { get; set; } = [];

    /// <summary>Whether the shipped rules apply after the operator's (false: only the operator's files classify).</summary>
    public bool IncludeShippedRules { get; set; } = true;

    /// <summary>Every file's problem, naming its key (Delivery:BounceRules:Files:n).</summary>
    public IEnumerable<string> Validate()
    {
        for (var i = 0; i < Files.Count; i++)
        {
            var key = "Delivery:BounceRules:Files:" + i.ToString(CultureInfo.InvariantCulture);
            string? error = null;
            try
            {
                using var stream = File.OpenRead(Files[i]);
                BounceRuleFile.Load(stream);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException or NotSupportedException)
            {
                error = $"{key}: cannot use bounce rules file '{Files[i]}': {ex.Message}";
            }

            if (error is not null)
            {
                yield return error;
            }
        }
    }
}

/// <summary>Registration of the bounce classifier.</summary>
public static class BounceClassificationExtensions
{
    /// <summary>
    /// Registers <see cref="BounceClassifier"/> and its options (Delivery:BounceRules, every file checked at start);
    /// idempotent, so Delivery and Queue in one Standalone process share one.
    /// </summary>
    public static IServiceCollection AddBounceClassifier(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);

        // Not TryAdd alone: a second BindConfiguration would bind Files again and list every file twice.
        if (services.Any(d => d.ServiceType == typeof(BounceClassifier)))
        {
            return services;
        }

        services.AddValidatedOptions<BounceRulesOptions>();
        services.TryAddSingleton<BounceClassifier>();
        return services;
    }
}
