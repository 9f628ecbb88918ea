using System.Globalization;

namespace MailMesh.Delivery.Bounces;

/// <summary>Bounce classification rules (section "Delivery:BounceRules", <c>docs/delivery.md</c>).</summary>
public sealed class BounceRulesOptions
{
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
