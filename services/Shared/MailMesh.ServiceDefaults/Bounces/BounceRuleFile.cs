using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using MailMesh.Contracts;

namespace MailMesh.ServiceDefaults.Bounces;

/// <summary>
/// One bounce rules file as it is written (JSON, <c>docs/delivery.md</c>): <c>codes</c> maps RFC 3463 enhanced status
/// codes to classes (exact codes such as <c>5.1.1</c>, <c>X.1.1</c> for either class, wildcards such as <c>X.7.*</c>), and
/// <c>patterns</c> lists groups of regular expressions on the reply, each group naming its class.
/// </summary>
public sealed class BounceRuleFile
{
    /// <summary>Enhanced status code patterns and their class names.</summary>
    [JsonPropertyName("codes")]
    public Dictionary<string, string>? Codes { get; set; }

    /// <summary>Groups of regular expressions on the reply, tried in order.</summary>
    [JsonPropertyName("patterns")]
    public List<BouncePatternGroup>? Patterns { get; set; }

    /// <summary>The rules the shipped file holds (an embedded resource of this assembly).</summary>
    public static BounceRuleFile Shipped { get; } = LoadShipped();

    /// <summary>Reads and checks a file; throws <see cref="InvalidDataException"/> naming what is wrong.</summary>
    public static BounceRuleFile Load(Stream stream)
    {
        BounceRuleFile? file;
        try
        {
            file = JsonSerializer.Deserialize<BounceRuleFile>(stream, new JsonSerializerOptions
            {
                ReadCommentHandling = JsonCommentHandling.Skip,
                AllowTrailingCommas = true,
            });
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"not a bounce rules file: {ex.Message}", ex);
        }

        if (file is null)
        {
            throw new InvalidDataException("not a bounce rules file: null");
        }

        foreach (var (code, name) in file.Codes ?? [])
        {
            if (!CodeKey.TryParse(code, out _))
            {
                throw new InvalidDataException($"codes: '{code}' is not an enhanced status code pattern (e.g. 5.1.1, X.1.1, X.7.*, 4.*.*)");
            }

            ParseClass(name, $"codes: '{code}'");
        }

        var groups = file.Patterns ?? [];
        for (var i = 0; i < groups.Count; i++)
        {
            var where = "patterns[" + i.ToString(CultureInfo.InvariantCulture) + "]";
            ParseClass(groups[i].Class, where);
            if (groups[i].Patterns is not { Count: > 0 } patterns)
            {
                throw new InvalidDataException($"{where}: lists no patterns");
            }

            // Each pattern's syntax, on the backtracking engine's parser (cheap); then the group as the one linear-time
            // regex the classifier runs, built once here and kept. Building every pattern on the linear-time engine
            // as well cost Delivery and Queue 0.6 s of CPU and 138 MB of garbage for the shipped file's 148 patterns,
            // at the first result, in traffic (issue 8).
            foreach (var pattern in patterns)
            {
                try
                {
                    _ = new Regex(pattern ?? throw new ArgumentException("null pattern"), BounceClassifier.PatternOptions & ~RegexOptions.NonBacktracking);
                }
                catch (ArgumentException ex)
                {
                    throw Unusable(where, pattern, ex);
                }
            }

            groups[i].Compiled = Compile(where, patterns);
        }

        return file;
    }

    /// <summary>
    /// A group's patterns as one linear-time regex. A construct that engine lacks is named with its pattern; patterns
    /// that are usable alone but not together (an inline <c>(?x)</c> comment that swallows the next one, a group over
    /// the engine's size limit) are refused for the group.
    /// </summary>
    private static Regex Compile(string where, List<string> patterns)
    {
        try
        {
            return new Regex(BouncePatternGroup.Combined(patterns), BounceClassifier.PatternOptions);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            // A construct the linear-time engine lacks (backreferences, lookarounds): find which pattern has it.
            foreach (var pattern in patterns)
            {
                try
                {
                    _ = new Regex(pattern, BounceClassifier.PatternOptions);
                }
                catch (NotSupportedException alone)
                {
                    throw Unusable(where, pattern, alone);
                }
            }

            throw new InvalidDataException($"{where}: the patterns are usable alone but not together as one regular expression: {ex.Message}", ex);
        }
    }

    private static InvalidDataException Unusable(string where, string? pattern, Exception ex) =>
        new($"{where}: '{pattern}' is not a usable regular expression: {ex.Message}", ex);

    /// <summary>The class named <paramref name="name"/> (case-insensitive).</summary>
    internal static BounceClass ParseClass(string? name, string where) =>
        Enum.TryParse<BounceClass>(name, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed) && !int.TryParse(name, out _)
            ? parsed
            : throw new InvalidDataException($"{where}: '{name}' is not a bounce class ({string.Join(", ", Enum.GetNames<BounceClass>())})");

    private static BounceRuleFile LoadShipped()
    {
        using var stream = typeof(BounceRuleFile).Assembly.GetManifestResourceStream("MailMesh.ServiceDefaults.Bounces.bounce-rules.json")
            ?? throw new InvalidOperationException("the shipped bounce-rules.json resource is missing");
        return Load(stream);
    }
}

/// <summary>Regular expressions on the reply that mean one class.</summary>
public sealed class BouncePatternGroup
{
    /// <summary>The class name the group means.</summary>
    [JsonPropertyName("class")]
    public string? Class { get; set; }

    /// <summary>The regular expressions; the group matches when any of them does.</summary>
    [JsonPropertyName("patterns")]
    public List<string>? Patterns { get; set; }

    /// <summary>
    /// The patterns as the one regex the classifier runs, set when the file was loaded and checked; null (built again)
    /// once <see cref="Patterns"/> no longer says what it was built from.
    /// </summary>
    [JsonIgnore]
    internal Regex? Compiled
    {
        get => _compiled is { } regex && Patterns is { } patterns && regex.ToString() == Combined(patterns) ? regex : null;
        set => _compiled = value;
    }

    private Regex? _compiled;

    /// <summary>The alternation of <paramref name="patterns"/>: it matches when any of them does.</summary>
    internal static string Combined(IEnumerable<string> patterns) => string.Join('|', patterns.Select(p => "(?:" + p + ")"));
}

/// <summary>
/// An enhanced status code pattern of a <c>codes</c> key: class 4, 5 or X (either), subject and detail as numbers or
/// <c>*</c> (a wildcard detail, or a wildcard subject and detail). RFC 3463 §2: each part is 1-3 digits.
/// </summary>
internal readonly record struct CodeKey(char Class, string Subject, string Detail)
{
    public bool IsWildcard => Detail == "*";

    public static bool TryParse(string text, out CodeKey key)
    {
        key = default;
        var parts = text.Split('.');
        if (parts.Length != 3 || parts[0] is not ("4" or "5" or "X" or "x"))
        {
            return false;
        }

        bool Number(string s) => s.Length is >= 1 and <= 3 && s.All(char.IsAsciiDigit);
        var valid = (Number(parts[1]) && (Number(parts[2]) || parts[2] == "*")) || (parts[1] == "*" && parts[2] == "*");
        if (!valid)
        {
            return false;
        }

        key = new CodeKey(char.ToUpperInvariant(parts[0][0]), Trim(parts[1]), Trim(parts[2]));
        return true;
    }

    public override string ToString() => $"{Class}.{Subject}.{Detail}";

    // "5.01.1" and "5.1.1" are one code (RFC 3463 §2: numbers).
    private static string Trim(string part) => part == "*" ? part : int.Parse(part, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture);
}
