using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MailMesh.Storage;

/// <summary>
/// One count of the SMTP TLS reporting aggregate (RFC 8460 §4): sessions of one UTC day for one policy, successful
/// (<see cref="ResultType"/> empty) or failed with the given details.
/// </summary>
public sealed record TlsReportCount
{
    public required DateOnly Day { get; init; }

    public required string PolicyDomain { get; init; }

    /// <summary>"tlsa", "sts" or "no-policy-found" (RFC 8460 §4.4 policy-type).</summary>
    public required string PolicyType { get; init; }

    /// <summary>The policy's strings, one per line (TLSA records, or the MTA-STS policy's lines).</summary>
    public required string PolicyStrings { get; init; }

    /// <summary>RFC 8460 §4.3 result type; empty for the success count.</summary>
    public required string ResultType { get; init; }

    public string MxHost { get; init; } = string.Empty;

    public string ReceivingIp { get; init; } = string.Empty;

    public string Detail { get; init; } = string.Empty;

    public required long Count { get; init; }

    /// <summary>The identity of the row the count adds to (a SHA-256 of every field but the day, domain and count).</summary>
    public string RowKey => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        string.Join('\u001f', PolicyType, PolicyStrings, ResultType, MxHost, ReceivingIp, Detail))));

    /// <summary>One row of policy_type, policy_strings, result_type, mx_host, receiving_ip, detail, count (both stores' ReadSql).</summary>
    internal static TlsReportCount Read(System.Data.Common.DbDataReader reader, DateOnly day, string domain) => new()
    {
        Day = day,
        PolicyDomain = domain,
        PolicyType = reader.GetString(0),
        PolicyStrings = reader.GetString(1),
        ResultType = reader.GetString(2),
        MxHost = reader.GetString(3),
        ReceivingIp = reader.GetString(4),
        Detail = reader.GetString(5),
        Count = reader.GetInt64(6),
    };

    internal static string DayText(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}

/// <summary>The shared TLS reporting aggregate: every Delivery replica adds to it, one replica sends each report.</summary>
public interface ITlsReportStore
{
    /// <summary>Adds the counts (rows are summed).</summary>
    Task AddAsync(IReadOnlyList<TlsReportCount> counts, CancellationToken cancellationToken);

    /// <summary>The policy domains with counts on <paramref name="day"/> whose report is not claimed yet.</summary>
    Task<IReadOnlyList<string>> UnsentDomainsAsync(DateOnly day, CancellationToken cancellationToken);

    /// <summary>Every count of <paramref name="domain"/> on <paramref name="day"/>.</summary>
    Task<IReadOnlyList<TlsReportCount>> ReadAsync(DateOnly day, string domain, CancellationToken cancellationToken);

    /// <summary>Claims the sending of one report; false when another replica already did.</summary>
    Task<bool> ClaimAsync(DateOnly day, string domain, string reportId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Gives a claim back after a failed send, so the next round tries again.</summary>
    Task ReleaseAsync(DateOnly day, string domain, CancellationToken cancellationToken);

    /// <summary>Deletes counts and claims of days before <paramref name="before"/>.</summary>
    Task PruneAsync(DateOnly before, CancellationToken cancellationToken);
}
