using System.Diagnostics;
using System.Net;
using MailMesh.Policy.Spf;
using MailMesh.Testing.Dkim;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Policy.Tests;

/// <summary>
/// MailMesh's results against two independent implementations, pyspf (Debian python3-spf, installed by
/// deploy/scripts/deps.sh) and mailauth (npm, <see cref="Mailauth"/>), asked about the same zones on the same test DNS
/// server: dnspython's default resolver and Node's resolver are pointed at it, so all evaluate the very same answers.
/// </summary>
public sealed class SpfInteropTests(SpfZones zones) : IClassFixture<SpfZones>
{
    private const string Script = """
        import sys, dns.resolver, spf
        host, port = sys.argv[1], int(sys.argv[2])
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
        resolver.lifetime = 5
        dns.resolver.default_resolver = resolver
        for line in sys.stdin:
            ip, sender, helo = line.split()
            result = spf.check2(i=ip, s=sender, h=helo, querytime=5)[0]
            print(result, flush=True)
        """;

    [Fact]
    public async Task PySpf_GivesTheSameResults_OnTheSameZones()
    {
        var python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var start = new ProcessStartInfo(python)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(Script);
        start.ArgumentList.Add(zones.Dns.EndPoint.Address.ToString());
        start.ArgumentList.Add(zones.Dns.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var process = Process.Start(start)!;
        foreach (var (domain, client, _) in Cases)
        {
            await process.StandardInput.WriteLineAsync($"{client} postmaster@{domain} client.example");
        }

        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(process.ExitCode == 0, $"pyspf (python3-spf, see deploy/scripts/deps.sh) failed: {await errors}");
        var theirs = (await output).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        await AssertAgreeAsync("pyspf", theirs, new Dictionary<string, (string, string)>());
    }

    /// <summary>Where mailauth (4.13.3) gives another result than MailMesh and pyspf, and why theirs is RFC 7208's. Any other
    /// difference fails the test, and so does one of these going away.</summary>
    private static readonly Dictionary<string, (string Mailauth, string Why)> MailauthDifferences = new()
    {
        // mailauth's include ignores a DNS error without an SPF result of its own and goes on to the next term (-all).
        ["includeservfail.spf.test"] = ("fail", "RFC 7208 §5.2: an include whose check_host() is temperror is temperror"),
    };

    [Fact]
    public async Task Mailauth_GivesTheSameResults_OnTheSameZones()
    {
        var theirs = await Mailauth.AuthenticateAsync(
            Cases.Select(c => new MailauthCase(c.Client, "client.example", "postmaster@" + c.Domain)).ToList(), zones.Dns);
        await AssertAgreeAsync("mailauth", [.. theirs.Select(r => r.Spf ?? "(none)")], MailauthDifferences);
    }

    private static List<(string Domain, string Client, string Expected)> Cases =>
        [.. SpfZones.Cases.Select(row => ((string)row[0], (string)row[1], (string)row[2]))];

    /// <summary>Asserts that MailMesh gives RFC 7208's result for every case and <paramref name="implementation"/> gives
    /// MailMesh's, except for the <paramref name="known"/> differences (domain → its result), each of which must occur.</summary>
    private async Task AssertAgreeAsync(string implementation, IReadOnlyList<string> theirs, IReadOnlyDictionary<string, (string Result, string Why)> known)
    {
        var cases = Cases;
        Assert.Equal(cases.Count, theirs.Count);
        using var checker = new SpfChecker(
            Options.Create(new SpfOptions { Enabled = true, DnsServers = zones.Servers, CacheDuration = TimeSpan.Zero }),
            new FakeTimeProvider(DateTimeOffset.UnixEpoch));
        var differences = new List<string>();
        for (var i = 0; i < cases.Count; i++)
        {
            var (domain, client, expected) = cases[i];
            var ours = ReceivedSpfHeader.Keyword((await checker.CheckAsync(IPAddress.Parse(client), "postmaster@" + domain, "client.example", CancellationToken.None)).Result);
            var agreed = known.TryGetValue(domain, out var difference) ? difference.Result : ours;
            if (ours != expected || theirs[i] != agreed)
            {
                differences.Add($"{domain} from {client}: MailMesh {ours}, {implementation} {theirs[i]} (expected {agreed}), RFC 7208 {expected}");
            }
        }

        Assert.True(differences.Count == 0, string.Join('\n', differences));
        Assert.Empty(known.Keys.Except(cases.Select(c => c.Domain)));
    }
}
