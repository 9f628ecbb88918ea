using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MailMesh.Delivery.Shaping;

/// <summary>A rate: <see cref="PerSecond"/> on average, with bursts of up to <see cref="Burst"/> at once.</summary>
internal readonly record struct Rate(double PerSecond, double Burst)
{
    /// <summary>
    /// "N/unit" with unit s, min, h or d (also second(s), minute(s), hour(s), day(s)): 600/min is 10 per second. The burst
    /// is one second's worth, at least 1.
    /// </summary>
    public static Rate Parse(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || !double.TryParse(text.AsSpan(0, slash).Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var count) || count <= 0 || !double.IsFinite(count))
        {
            throw new InvalidDataException($"'{text}' is not a rate (N/s, N/min, N/h or N/d with N > 0)");
        }

        var seconds = text[(slash + 1)..].Trim().ToLowerInvariant() switch
        {
            "s" or "sec" or "second" => 1.0,
            "m" or "min" or "minute" => 60.0,
            "h" or "hour" => 3600.0,
            "d" or "day" => 86400.0,
            _ => throw new InvalidDataException($"'{text}' is not a rate: the unit must be s, min, h or d"),
        };
        var perSecond = count / seconds;
        return new Rate(perSecond, Math.Max(1, Math.Floor(perSecond)));
    }

    public override string ToString() => PerSecond.ToString("0.###", CultureInfo.InvariantCulture) + "/s";
}

/// <summary>
/// A site's limits; null means "not set here" (an earlier layer's value, or no limit). Layers: the file's
/// <c>default</c>, then the provider rule, then the domain override.
/// </summary>
internal sealed record ShapingLimits
{
    /// <summary>SMTP connections open at once to the site, across all Delivery replicas (shared budget).</summary>
    public int? MaxConnections { get; init; }

    /// <summary>New connections to the site, across all replicas.</summary>
    public Rate? ConnectionRate { get; init; }

    /// <summary>Messages (transactions) to the site, across all replicas.</summary>
    public Rate? MessageRate { get; init; }

    /// <summary>Transactions on one connection before it is closed (instead of Delivery:MaxMessagesPerConnection).</summary>
    public int? MaxDeliveriesPerConnection { get; init; }

    /// <summary>An idle connection to the site is closed after this (instead of Delivery:IdleConnectionTimeout).</summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>The TLS mode for the site (instead of Delivery:Tls's policy); a REQUIRETLS message still needs Verified.</summary>
    public TlsMode? Tls { get; init; }

    public static ShapingLimits None { get; } = new();

    /// <summary>These values, each replaced by <paramref name="over"/>'s where it has one.</summary>
    public ShapingLimits With(ShapingLimits? over) => over is null ? this : new()
    {
        MaxConnections = over.MaxConnections ?? MaxConnections,
        ConnectionRate = over.ConnectionRate ?? ConnectionRate,
        MessageRate = over.MessageRate ?? MessageRate,
        MaxDeliveriesPerConnection = over.MaxDeliveriesPerConnection ?? MaxDeliveriesPerConnection,
        IdleTimeout = over.IdleTimeout ?? IdleTimeout,
        Tls = over.Tls ?? Tls,
    };

    /// <summary>True when the site needs the shared budget at all (a connection limit or a rate).</summary>
    public bool IsBudgeted => MaxConnections is not null || ConnectionRate is not null || MessageRate is not null;
}

/// <summary>A provider: every destination whose MX set has a host matching <see cref="MxPatterns"/> shares one site.</summary>
internal sealed record ProviderRule(string Site, IReadOnlyList<string> MxPatterns, ShapingLimits Limits)
{
    /// <summary>"*.google.com" matches any name under google.com; "mx.example.net" only itself. Case-insensitive.</summary>
    public bool Matches(string host)
    {
        foreach (var pattern in MxPatterns)
        {
            if (MxPattern.Matches(pattern, host))
            {
                return true;
            }
        }

        return false;
    }
}

internal static class MxPattern
{
    public static bool Matches(string pattern, string host)
    {
        var name = host.TrimEnd('.');
        return pattern.StartsWith("*.", StringComparison.Ordinal)
            ? name.Length > pattern.Length - 1 && name.EndsWith(pattern.AsSpan(1), StringComparison.OrdinalIgnoreCase)
            : name.Equals(pattern, StringComparison.OrdinalIgnoreCase);
    }

    public static bool IsValid(string pattern)
    {
        var name = pattern.StartsWith("*.", StringComparison.Ordinal) ? pattern[2..] : pattern;
        return name.Length > 0 && !name.Contains('*', StringComparison.Ordinal) && Uri.CheckHostName(name) == UriHostNameType.Dns;
    }
}

/// <summary>A per-domain override: its own site (named <see cref="Site"/>, or the domain itself) with these limits.</summary>
internal sealed record DomainRule(string Domain, string? Site, ShapingLimits Limits);

/// <summary>What an automation rule does when it fires.</summary>
internal enum AutomationAction
{
    /// <summary>Suspend the site (every source IP).</summary>
    Suspend,

    /// <summary>Suspend the source IP the reply came to, at that site.</summary>
    SuspendSourceIp,

    /// <summary>Lower the site's connection limit and/or message rate.</summary>
    Lower,
}

/// <summary>
/// An automation rule: when a destination's reply matches one of <see cref="Patterns"/> (on sites named in
/// <see cref="Sites"/>, or on every site) <see cref="Threshold"/> times within <see cref="Window"/>, the action applies for
/// <see cref="Duration"/>.
/// </summary>
internal sealed record AutomationRule(
    string Name,
    IReadOnlyList<string> Sites,
    Regex Patterns,
    AutomationAction Action,
    TimeSpan Duration,
    int Threshold,
    TimeSpan Window,
    int? MaxConnections,
    Rate? MessageRate)
{
    public bool AppliesTo(string site) => Sites.Count == 0 || Sites.Contains(site, StringComparer.OrdinalIgnoreCase);

    /// <summary>The text rules match: "&lt;reply code&gt; &lt;enhanced code&gt; &lt;reply text&gt;", as bounce rules see it.</summary>
    public static string Subject(int code, string? enhanced, string text) =>
        string.Concat(code.ToString(CultureInfo.InvariantCulture), " ", enhanced ?? string.Empty, " ", text);
}

/// <summary>The rules of one or more shaping files, merged: operator files first, then the shipped file.</summary>
internal sealed class ShapingRules
{
    public ShapingLimits Default { get; private set; } = ShapingLimits.None;

    public List<ProviderRule> Providers { get; } = [];

    public Dictionary<string, DomainRule> Domains { get; } = new(StringComparer.OrdinalIgnoreCase);

    public List<AutomationRule> Automation { get; } = [];

    /// <summary>The shipped rules (the embedded <c>shaping.json</c>).</summary>
    public static Stream OpenShipped() =>
        typeof(ShapingRules).Assembly.GetManifestResourceStream("MailMesh.Delivery.Shaping.shaping.json")
            ?? throw new InvalidOperationException("the shipped shaping.json is not embedded");

    /// <summary>Rules from files in order of precedence (first wins for providers and domains; defaults by value).</summary>
    public static ShapingRules Load(IEnumerable<Stream> files)
    {
        var rules = new ShapingRules();
        var defaults = new List<ShapingLimits>();
        foreach (var stream in files)
        {
            var file = ShapingFile.Read(stream);
            defaults.Add(file.Default);
            rules.Providers.AddRange(file.Providers);
            foreach (var domain in file.Domains)
            {
                rules.Domains.TryAdd(domain.Domain, domain);
            }

            rules.Automation.AddRange(file.Automation);
        }

        // Later files are the lower layers: apply them first.
        for (var i = defaults.Count - 1; i >= 0; i--)
        {
            rules.Default = rules.Default.With(defaults[i]);
        }

        return rules;
    }
}

/// <summary>One shaping file (JSON, format in docs/delivery.md "Traffic shaping"); every problem is an InvalidDataException naming its place.</summary>
internal sealed record ShapingFile(ShapingLimits Default, List<ProviderRule> Providers, List<DomainRule> Domains, List<AutomationRule> Automation)
{
    private static readonly JsonDocumentOptions Options = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    public static ShapingFile Read(Stream stream)
    {
        using var document = JsonDocument.Parse(stream, Options);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("the file must hold a JSON object");
        }

        var limits = root.TryGetProperty("default", out var d) ? ReadLimits(d, "default") : ShapingLimits.None;
        var providers = new List<ProviderRule>();
        if (root.TryGetProperty("providers", out var p))
        {
            var i = 0;
            foreach (var item in Array(p, "providers"))
            {
                var where = $"providers[{i++}]";
                var site = Text(item, "site", where) ?? throw new InvalidDataException($"{where}: 'site' is required");
                var patterns = Strings(item, "mx", where);
                if (patterns.Count == 0)
                {
                    throw new InvalidDataException($"{where}: 'mx' must list at least one MX host pattern");
                }

                foreach (var pattern in patterns)
                {
                    if (!MxPattern.IsValid(pattern))
                    {
                        throw new InvalidDataException($"{where}: '{pattern}' is not an MX host pattern (a host name, or *.suffix)");
                    }
                }

                providers.Add(new ProviderRule(site.ToLowerInvariant(), patterns, ReadLimits(item, where)));
            }
        }

        var domains = new List<DomainRule>();
        if (root.TryGetProperty("domains", out var ds))
        {
            if (ds.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException("domains: must be an object (domain name: settings)");
            }

            foreach (var entry in ds.EnumerateObject())
            {
                var where = $"domains.{entry.Name}";
                domains.Add(new DomainRule(entry.Name.TrimEnd('.').ToLowerInvariant(), Text(entry.Value, "site", where)?.ToLowerInvariant(), ReadLimits(entry.Value, where)));
            }
        }

        var automation = new List<AutomationRule>();
        if (root.TryGetProperty("automation", out var a))
        {
            var i = 0;
            foreach (var item in Array(a, "automation"))
            {
                automation.Add(ReadRule(item, $"automation[{i++}]"));
            }
        }

        return new ShapingFile(limits, providers, domains, automation);
    }

    private static AutomationRule ReadRule(JsonElement item, string where)
    {
        var name = Text(item, "name", where) ?? throw new InvalidDataException($"{where}: 'name' is required");
        where = $"{where} ({name})";
        var patterns = Strings(item, "patterns", where);
        if (patterns.Count == 0)
        {
            throw new InvalidDataException($"{where}: 'patterns' must list at least one regular expression");
        }

        Regex regex;
        try
        {
            // The linear-time engine, as for bounce rules: no reply can make matching slow.
            regex = new Regex(string.Join('|', patterns.Select(x => "(?:" + x + ")")),
                RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.NonBacktracking, TimeSpan.FromSeconds(1));
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            throw new InvalidDataException($"{where}: the patterns are not usable regular expressions: {ex.Message}", ex);
        }

        var actionText = Text(item, "action", where) ?? throw new InvalidDataException($"{where}: 'action' is required (suspend, suspendSourceIp, lower)");
        var action = actionText.ToLowerInvariant() switch
        {
            "suspend" => AutomationAction.Suspend,
            "suspendsourceip" => AutomationAction.SuspendSourceIp,
            "lower" => AutomationAction.Lower,
            _ => throw new InvalidDataException($"{where}: action '{actionText}' is not suspend, suspendSourceIp or lower"),
        };
        var duration = Duration(item, "duration", where) ?? throw new InvalidDataException($"{where}: 'duration' is required");
        int threshold = 1;
        var window = TimeSpan.FromHours(1);
        if (Text(item, "trigger", where) is { } trigger)
        {
            // "N/unit": N matches within one unit (fixed windows), e.g. "2/h".
            var slash = trigger.IndexOf('/', StringComparison.Ordinal);
            if (slash <= 0 || !int.TryParse(trigger.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out threshold) || threshold < 1)
            {
                throw new InvalidDataException($"{where}: trigger '{trigger}' is not N/unit (e.g. 2/h)");
            }

            window = TimeSpan.FromSeconds(1 / Rate.Parse("1/" + trigger[(slash + 1)..]).PerSecond);
        }

        int? maxConnections = null;
        Rate? messageRate = null;
        if (action == AutomationAction.Lower)
        {
            maxConnections = Int(item, "maxConnections", where);
            messageRate = Text(item, "messageRate", where) is { } rate ? ParseRate(rate, where) : null;
            if (maxConnections is null && messageRate is null)
            {
                throw new InvalidDataException($"{where}: action 'lower' needs maxConnections or messageRate");
            }
        }

        var sites = item.TryGetProperty("sites", out _) ? Strings(item, "sites", where).Select(s => s.ToLowerInvariant()).ToList() : [];
        return new AutomationRule(name, sites, regex, action, duration, threshold, window, maxConnections, messageRate);
    }

    private static ShapingLimits ReadLimits(JsonElement item, string where)
    {
        if (item.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{where}: must be an object");
        }

        var tls = Text(item, "tls", where);
        return new ShapingLimits
        {
            MaxConnections = Int(item, "maxConnections", where),
            ConnectionRate = Text(item, "connectionRate", where) is { } c ? ParseRate(c, where) : null,
            MessageRate = Text(item, "messageRate", where) is { } m ? ParseRate(m, where) : null,
            MaxDeliveriesPerConnection = Int(item, "maxDeliveriesPerConnection", where),
            IdleTimeout = Duration(item, "idleTimeout", where),
            Tls = tls is null ? null
                : Enum.TryParse<TlsMode>(tls, ignoreCase: true, out var mode) && Enum.IsDefined(mode) && !int.TryParse(tls, out _) ? mode
                : throw new InvalidDataException($"{where}: tls '{tls}' is not None, Opportunistic, Required or Verified"),
        };
    }

    private static Rate ParseRate(string text, string where)
    {
        try
        {
            return Rate.Parse(text);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{where}: {ex.Message}", ex);
        }
    }

    private static IEnumerable<JsonElement> Array(JsonElement element, string where) =>
        element.ValueKind == JsonValueKind.Array ? element.EnumerateArray() : throw new InvalidDataException($"{where}: must be an array");

    private static string? Text(JsonElement item, string name, string where) =>
        !item.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text ? text
        : throw new InvalidDataException($"{where}: '{name}' must be a non-empty string");

    private static int? Int(JsonElement item, string name, string where) =>
        !item.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n >= 1 ? n
        : throw new InvalidDataException($"{where}: '{name}' must be a whole number of at least 1");

    private static TimeSpan? Duration(JsonElement item, string name, string where) =>
        Text(item, name, where) is not { } text ? null
        : TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero ? span
        : throw new InvalidDataException($"{where}: '{name}' must be a positive duration (hh:mm:ss)");

    private static List<string> Strings(JsonElement item, string name, string where)
    {
        if (!item.TryGetProperty(name, out var value))
        {
            return [];
        }

        var list = new List<string>();
        foreach (var element in Array(value, $"{where}.{name}"))
        {
            list.Add(element.ValueKind == JsonValueKind.String && element.GetString() is { Length: > 0 } s ? s
                : throw new InvalidDataException($"{where}.{name}: every entry must be a non-empty string"));
        }

        return list;
    }
}
