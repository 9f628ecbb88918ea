using System.Globalization;
using MailMesh.ServiceDefaults;

namespace MailMesh.Delivery.Shaping;

/// <summary>Where the shaping budgets live (<see cref="ShapingOptions.Budget"/>).</summary>
public enum ShapingBudgetMode
{
    /// <summary>Shared in PostgreSQL when the store is PostgreSQL, in memory with SQLite (Standalone: one process).</summary>
    Auto,

    /// <summary>Shared by every Delivery replica through the PostgreSQL store (falls back per replica while it is down).</summary>
    Shared,

    /// <summary>In this process's memory only: every replica has the whole budget.</summary>
    Local,
}

/// <summary>What a replica uses while the shared budget store cannot be reached (<see cref="ShapingOptions.Fallback"/>).</summary>
public enum ShapingFallback
{
    /// <summary>Each replica takes its share: the limit divided by <see cref="ShapingOptions.ExpectedReplicas"/> (at least 1).</summary>
    Divide,

    /// <summary>Each replica takes the whole limit (the destination may see up to replicas × the limit).</summary>
    PerReplica,
}

/// <summary>Traffic shaping (section "Delivery:Shaping", docs/delivery.md "Traffic shaping").</summary>
public sealed class ShapingOptions : IValidatedOptions
{
    /// <summary>The configuration section.</summary>
    public static string SectionName => "Delivery:Shaping";

    /// <summary>Off: no sites, no budgets, no automation; Delivery behaves as before shaping.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The operator's shaping files (JSON, the shipped file's format), applied before the shipped rules.</summary>
    public List<string> Files { get; set; } = [];

    /// <summary>Whether the shipped rules (<c>Shaping/shaping.json</c>) apply after the operator's.</summary>
    public bool IncludeShippedRules { get; set; } = true;

    /// <summary>Where budgets are kept: Auto (shared over PostgreSQL, local over SQLite), Shared or Local.</summary>
    public ShapingBudgetMode Budget { get; set; } = ShapingBudgetMode.Auto;

    /// <summary>Delivery replicas the operator runs: the divisor of <see cref="ShapingFallback.Divide"/>.</summary>
    public int ExpectedReplicas { get; set; } = 1;

    /// <summary>What a replica uses while the shared store is unreachable.</summary>
    public ShapingFallback Fallback { get; set; } = ShapingFallback.Divide;

    /// <summary>
    /// A shared connection lease lasts this long unless renewed (a third of it, while the connection is open): a replica
    /// that dies gives its connections back after at most this.
    /// </summary>
    public TimeSpan ConnectionLeaseDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Longest a delivery waits for a message-rate token before it is handed back to Queue, not attempted, until the
    /// token would be due (no attempt is counted).
    /// </summary>
    public TimeSpan MaxRateWait { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Longest a connection holding a slot of a shared connection limit stays idle (instead of the site's longer idle
    /// timeout): a replica with no more work for the site gives its slot back for a replica that has some. Deliveries of
    /// this replica waiting for a slot take an idle connection at once, so reuse is not lost.
    /// </summary>
    public TimeSpan SharedIdleTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often each replica reads the live site actions (suspensions, lowered limits) from the store.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Longest Queue holds a recipient back for a suspension before it is claimed again (so a suspension an operator
    /// removes early releases the work within this).
    /// </summary>
    public TimeSpan MaxHold { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Longest one budget statement may take before the replica falls back to its local budget for it.</summary>
    public TimeSpan StoreTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Every problem, naming its key.</summary>
    public IEnumerable<string> Validate()
    {
        if (ExpectedReplicas < 1)
        {
            yield return "Delivery:Shaping:ExpectedReplicas: must be at least 1";
        }

        foreach (var (key, value) in new[]
        {
            ("ConnectionLeaseDuration", ConnectionLeaseDuration), ("MaxRateWait", MaxRateWait), ("RefreshInterval", RefreshInterval),
            ("MaxHold", MaxHold), ("StoreTimeout", StoreTimeout), ("SharedIdleTimeout", SharedIdleTimeout),
        })
        {
            if (value <= TimeSpan.Zero)
            {
                yield return $"Delivery:Shaping:{key}: must be positive";
            }
        }

        if (!Enum.IsDefined(Budget))
        {
            yield return "Delivery:Shaping:Budget: must be Auto, Shared or Local";
        }

        if (!Enum.IsDefined(Fallback))
        {
            yield return "Delivery:Shaping:Fallback: must be Divide or PerReplica";
        }

        for (var i = 0; i < Files.Count; i++)
        {
            var key = "Delivery:Shaping:Files:" + i.ToString(CultureInfo.InvariantCulture);
            string? error = null;
            try
            {
                using var stream = File.OpenRead(Files[i]);
                ShapingFile.Read(stream);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or System.Text.Json.JsonException or ArgumentException or NotSupportedException)
            {
                error = $"{key}: cannot use shaping file '{Files[i]}': {ex.Message}";
            }

            if (error is not null)
            {
                yield return error;
            }
        }
    }

    /// <summary>The rules these options name: the operator's files, then (unless switched off) the shipped file.</summary>
    internal ShapingRules LoadRules()
    {
        var streams = new List<Stream>();
        try
        {
            streams.AddRange(Files.Select(File.OpenRead));
            if (IncludeShippedRules)
            {
                streams.Add(ShapingRules.OpenShipped());
            }

            return ShapingRules.Load(streams);
        }
        finally
        {
            foreach (var stream in streams)
            {
                stream.Dispose();
            }
        }
    }
}
