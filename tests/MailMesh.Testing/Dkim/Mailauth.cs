using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Testing.Dkim;

/// <summary>
/// mailauth (postalsys, an npm package), an independent implementation of SPF (RFC 7208), DKIM, DMARC (RFC 7489) and
/// ARC (RFC 8617), run by Node on tests/mailauth/authenticate.mjs with its DNS lookups sent to a
/// <see cref="TestDnsServer"/>, so it evaluates the very same answers as MailMesh. Its node_modules come from
/// tests/mailauth/package-lock.json (npm ci, run by deploy/scripts/deps.sh with MAILMESH_TEST_TOOLS=1).
/// </summary>
public static class Mailauth
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>tests/mailauth, the Node project holding the script and its lock file.</summary>
    public static string Directory => Path.Combine(TestEnvironment.RepositoryRoot, "tests", "mailauth");

    /// <summary>mailauth's results for <paramref name="cases"/>, in order; DNS from <paramref name="dns"/>. A case without a
    /// message is an SPF check_host only.</summary>
    public static async Task<IReadOnlyList<MailauthResult>> AuthenticateAsync(IReadOnlyList<MailauthCase> cases, TestDnsServer dns)
    {
        ArgumentNullException.ThrowIfNull(cases);
        ArgumentNullException.ThrowIfNull(dns);
        if (!File.Exists(Path.Combine(Directory, "node_modules", "mailauth", "package.json")))
        {
            throw new InvalidOperationException(
                $"mailauth is not installed in {Directory}: run MAILMESH_TEST_TOOLS=1 deploy/scripts/deps.sh (it runs npm ci there)");
        }

        var input = new StringBuilder();
        foreach (var item in cases)
        {
            input.Append(JsonSerializer.Serialize(
                new { ip = item.Ip, helo = item.Helo, sender = item.Sender, message = item.Message is null ? null : Convert.ToBase64String(item.Message) },
                Json)).Append('\n');
        }

        var (exit, output) = await DkimVerifiers.RunAsync(
            "node",
            [Path.Combine(Directory, "authenticate.mjs"), dns.EndPoint.Address.ToString(), dns.EndPoint.Port.ToString(CultureInfo.InvariantCulture)],
            Encoding.UTF8.GetBytes(input.ToString()));
        if (exit != 0)
        {
            throw new InvalidOperationException($"mailauth (node tests/mailauth/authenticate.mjs) exited with {exit}: {output}");
        }

        // Standard error follows standard output in `output`; only the results are JSON objects.
        var results = output.Split('\n', StringSplitOptions.TrimEntries)
            .Where(line => line.StartsWith('{'))
            .Select(line => JsonSerializer.Deserialize<MailauthResult>(line, Json)!)
            .ToList();
        return results.Count == cases.Count
            ? results
            : throw new InvalidOperationException($"mailauth answered {results.Count} of {cases.Count} cases: {output}");
    }
}

/// <summary>One message as a receiving MTA sees it: client address, HELO, MAIL FROM and (optionally) the message.</summary>
public sealed record MailauthCase(string Ip, string Helo, string Sender, byte[]? Message = null);

/// <summary>mailauth's verdicts: the SPF result, each DKIM signature's, the ARC chain's and DMARC's.</summary>
public sealed record MailauthResult(string? Spf, IReadOnlyList<string>? Dkim, string? Arc, MailauthDmarc? Dmarc);

/// <summary>mailauth's DMARC result, the policy it found (sp= for a subdomain when present, else p=) and pct=.</summary>
public sealed record MailauthDmarc(string Result, string? Policy, int? Pct);
