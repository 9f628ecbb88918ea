using System.Globalization;
using System.Text.RegularExpressions;
using MailMesh.Contracts;
using Microsoft.Extensions.Options;

namespace MailMesh.ServiceDefaults.Bounces;

/// <summary>
/// Classifies every reply that is not a delivery into a <see cref="BounceClass"/> by data, not code: the rules of the
/// operator's files (<see cref="BounceRulesOptions.Files"/>, in order) before the shipped <c>bounce-rules.json</c>.
/// </summary>
/// <remarks>
/// Order, the first answer wins (KumoMTA's classifier matches regexes on the whole reply; enhanced status codes go first
/// here because a specific RFC 3463 code is the server's own classification):
/// <list type="number">
/// <item>an exact enhanced status code (<c>5.1.1</c>, then <c>X.1.1</c>);</item>
/// <item>the pattern groups, in file order, on "<c>code enhanced-code text</c>" (a generic code such as 5.7.1 or 4.7.0
/// says little; the text says spam block, throttling, unknown user);</item>
/// <item>wildcard codes, most specific first (<c>5.7.*</c>, <c>X.7.*</c>, <c>5.*.*</c>, <c>X.*.*</c>);</item>
/// <item>the outcome: <see cref="BounceClass.TransientFailure"/> for a deferral, <see cref="BounceClass.Uncategorized"/>
/// for a bounce.</item>
/// </list>
/// Patterns are compiled with <see cref="RegexOptions.NonBacktracking"/>: an operator's pattern runs in linear time
/// whatever the reply.
/// </remarks>
public sealed class BounceClassifier
{
    internal const RegexOptions PatternOptions = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.NonBacktracking;

    private readonly Dictionary<string, BounceClass> _codes = new(StringComparer.Ordinal);
    private readonly List<(BounceClass Class, Regex Pattern)> _patterns = [];

    /// <summary>The classifier of the configured files (Delivery:BounceRules), checked by their options' validation.</summary>
    public BounceClassifier(IOptions<BounceRulesOptions> options)
        : this(Files((options ?? throw new ArgumentNullException(nameof(options))).Value))
    {
    }

    /// <summary>A classifier of <paramref name="files"/>, the first one's rules first.</summary>
    public static BounceClassifier Of(IEnumerable<BounceRuleFile> files) => new(files);

    // Not public: two one-argument constructors would be ambiguous to the container (it can make an empty IEnumerable).
    private BounceClassifier(IEnumerable<BounceRuleFile> files)
    {
        foreach (var file in files)
        {
            foreach (var (code, name) in file.Codes ?? [])
            {
                if (CodeKey.TryParse(code, out var key))
                {
                    _codes.TryAdd(key.ToString(), BounceRuleFile.ParseClass(name, code));
                }
            }

            foreach (var group in file.Patterns ?? [])
            {
                // Built when the file was loaded; a group made in code is built here.
                var regex = group.Compiled ?? new Regex(BouncePatternGroup.Combined(group.Patterns!), PatternOptions);
                _patterns.Add((BounceRuleFile.ParseClass(group.Class, "patterns"), regex));
            }
        }
    }

    /// <summary>The files <paramref name="options"/> name, then the shipped one unless left out.</summary>
    public static IEnumerable<BounceRuleFile> Files(BounceRulesOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var path in options.Files)
        {
            using var stream = File.OpenRead(path);
            yield return BounceRuleFile.Load(stream);
        }

        if (options.IncludeShippedRules)
        {
            yield return BounceRuleFile.Shipped;
        }
    }

    /// <summary><paramref name="result"/> with its class; a delivery stays unclassified.</summary>
    public RecipientResult Classify(RecipientResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return result.Outcome == DeliveryOutcome.Delivered
            ? result
            : result with { Class = Classify(result.ReplyCode, result.EnhancedCode, result.ReplyText, result.Outcome == DeliveryOutcome.Deferred) };
    }

    /// <summary>The class of one reply that was not a delivery (<paramref name="transient"/>: it deferred the recipient).</summary>
    public BounceClass Classify(int replyCode, string? enhancedCode, string? text, bool transient)
    {
        var (cls, subject, detail) = Parse(replyCode, enhancedCode, transient);
        if (subject is not null && (Lookup(cls, subject, detail!) is { } exact))
        {
            return exact;
        }

        var input = string.Concat(replyCode.ToString(CultureInfo.InvariantCulture), " ", enhancedCode, " ", text);
        foreach (var (bounceClass, pattern) in _patterns)
        {
            if (pattern.IsMatch(input))
            {
                return bounceClass;
            }
        }

        var fallback = (subject is not null ? Lookup(cls, subject, "*") : null) ?? Lookup(cls, "*", "*");
        return fallback ?? (transient ? BounceClass.TransientFailure : BounceClass.Uncategorized);
    }

    private BounceClass? Lookup(char cls, string subject, string detail) =>
        _codes.TryGetValue($"{cls}.{subject}.{detail}", out var specific) ? specific
        : _codes.TryGetValue($"X.{subject}.{detail}", out var either) ? either
        : null;

    /// <summary>
    /// The class digit (from the enhanced code, else the reply code, else the outcome), with subject and detail when the
    /// enhanced code is well formed (RFC 3463 §2).
    /// </summary>
    private static (char Class, string? Subject, string? Detail) Parse(int replyCode, string? enhancedCode, bool transient)
    {
        if (enhancedCode is not null && CodeKey.TryParse(enhancedCode, out var key) && key.Class is '4' or '5' && !key.IsWildcard && key.Subject != "*")
        {
            return (key.Class, key.Subject, key.Detail);
        }

        var cls = replyCode is >= 400 and < 500 ? '4' : replyCode is >= 500 and < 600 ? '5' : transient ? '4' : '5';
        return (cls, null, null);
    }
}
