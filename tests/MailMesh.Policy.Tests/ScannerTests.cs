using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailMesh.Policy.Content;
using MailMesh.Policy.Scanning;
using MailMesh.Testing.Infrastructure;
using MailMesh.Testing.Scanning;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Tests;

[CollectionDefinition(Name)]
public sealed class ScannerCollection : ICollectionFixture<ScannerFixture>
{
    public const string Name = "scanners";
}

/// <summary>rspamd and clamd as <see cref="IContentCheck"/>s against the real daemons (Debian's packages) started by the test.</summary>
[Collection(ScannerCollection.Name)]
public sealed class ScannerTests(ScannerFixture scanners)
{
    internal static ContentCheckRequest Request(string content, string sender = "alice@sender.example", bool submitter = false, params string[] recipients)
    {
        var bytes = Encoding.UTF8.GetBytes(content);
        return new ContentCheckRequest
        {
            ClientAddress = IPAddress.Parse("192.0.2.10"),
            ClientHelo = "mail.sender.example",
            Sender = sender,
            Recipients = recipients.Length == 0 ? ["bob@mailmesh.example"] : recipients,
            IsSubmitter = submitter,
            Length = bytes.Length,
            OpenContent = () => new MemoryStream(bytes, writable: false),
        };
    }

    internal static string Message(string body, string subject = "Lunch on Friday", string extraHeaders = "") =>
        "From: Alice <alice@sender.example>\r\nTo: Bob <bob@mailmesh.example>\r\nSubject: " + subject + "\r\n"
        + "Date: Wed, 2 Dec 2026 10:00:00 +0000\r\nMessage-ID: <" + Guid.NewGuid().ToString("N") + "@sender.example>\r\n"
        + "MIME-Version: 1.0\r\n" + extraHeaders
        + (extraHeaders.Contains("Content-Type", StringComparison.Ordinal) ? string.Empty : "Content-Type: text/plain; charset=utf-8\r\n")
        + "\r\n" + body;

    internal static string CleanMessage() => Message("Hi Bob,\r\n\r\nshall we have lunch on Friday at noon?\r\n\r\nAlice\r\n");

    internal static string GtubeMessage() => Message("This is the GTUBE test:\r\n\r\n" + RspamdServer.Gtube + "\r\n", "GTUBE test");

    /// <summary>A message with the EICAR test file as a base64 attachment.</summary>
    internal static string EicarMessage() => Message(
        "--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n--b1\r\n"
        + "Content-Type: application/octet-stream; name=eicar.com\r\nContent-Disposition: attachment; filename=eicar.com\r\n"
        + "Content-Transfer-Encoding: base64\r\n\r\n" + Convert.ToBase64String(Encoding.ASCII.GetBytes(ClamdServer.Eicar)) + "\r\n--b1--\r\n",
        "the file", "Content-Type: multipart/mixed; boundary=b1\r\n");

    private static RspamdCheck Rspamd(RspamdOptions options, PolicyMetrics? metrics = null) =>
        new(Options.Create(options), metrics ?? Metrics(), NullLogger<RspamdCheck>.Instance);

    private static ClamdCheck Clamd(ClamdOptions options) =>
        new(Options.Create(options), Metrics(), NullLogger<ClamdCheck>.Instance);

    private static PolicyMetrics Metrics() => new ServiceCollection().AddMetrics().AddSingleton<PolicyMetrics>().BuildServiceProvider().GetRequiredService<PolicyMetrics>();

    private RspamdOptions RspamdOptions() => new() { Enabled = true, Url = scanners.Rspamd.Url.ToString(), Timeout = TimeSpan.FromSeconds(30) };

    private ClamdOptions ClamdOptions() => new() { Enabled = true, Address = scanners.Clamd.Address, Timeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task Rspamd_Gtube_IsRefusedWith550AndRspamdsReason()
    {
        var result = await Rspamd(RspamdOptions()).CheckAsync(Request(GtubeMessage()), CancellationToken.None);
        Assert.NotNull(result.Refusal);
        Assert.Equal(550, result.Refusal.ReplyCode);
        Assert.Equal("5.7.1", result.Refusal.EnhancedCode);
        Assert.Equal("spam message refused: Gtube pattern", result.Refusal.Reason);
    }

    [Fact]
    public async Task Rspamd_ACleanMessage_PassesWithAnXSpamStatusNo()
    {
        var result = await Rspamd(RspamdOptions()).CheckAsync(Request(CleanMessage(), recipients: ["bob@mailmesh.example", "carol@mailmesh.example"]), CancellationToken.None);
        Assert.True(result.Refusal is null, result.Refusal?.Reason);
        Assert.False(result.Junk);
        var status = Assert.Single(result.Headers, h => h.StartsWith("X-Spam-Status:", StringComparison.Ordinal));
        Assert.StartsWith("X-Spam-Status: No, score=", status, StringComparison.Ordinal);
        Assert.Contains("action=\"no action\" scanner=rspamd", status.Replace("\r\n\t", " ", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.EndsWith("\r\n", status, StringComparison.Ordinal);
        Assert.DoesNotContain(result.Headers, h => h.StartsWith("X-Spam-Flag:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Rspamd_GtubeWithRejectMappedToJunk_IsAcceptedIntoJunkWithSpamHeaders()
    {
        var options = RspamdOptions();
        options.RejectAction = ScanAction.Junk;
        var result = await Rspamd(options).CheckAsync(Request(GtubeMessage()), CancellationToken.None);
        Assert.Null(result.Refusal);
        Assert.True(result.Junk);
        Assert.Contains("X-Spam-Flag: YES\r\n", result.Headers);
        Assert.Contains(result.Headers, h => h.StartsWith("X-Spam-Status: Yes, score=", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Rspamd_Down_IsA451_NeverASilentAccept()
    {
        var options = RspamdOptions();
        options.Url = $"http://127.0.0.1:{LoopbackPort.Free()}/";
        var result = await Rspamd(options).CheckAsync(Request(CleanMessage()), CancellationToken.None);
        Assert.NotNull(result.Refusal);
        Assert.Equal(451, result.Refusal.ReplyCode);
        Assert.Equal("4.7.1", result.Refusal.EnhancedCode);

        options.UnavailableAction = ScanAction.Tag;
        var tagged = await Rspamd(options).CheckAsync(Request(CleanMessage()), CancellationToken.None);
        Assert.Null(tagged.Refusal);
        Assert.Contains(tagged.Headers, h => h.StartsWith("X-Spam-Status: Unknown, spam scanner unavailable", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Rspamd_ThatAcceptsButNeverAnswers_IsA451AfterTheTimeout()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var options = RspamdOptions();
        options.Url = $"http://127.0.0.1:{port}/";
        options.Timeout = TimeSpan.FromMilliseconds(500);
        var result = await Rspamd(options).CheckAsync(Request(CleanMessage()), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(451, result.Refusal?.ReplyCode);
    }

    [Fact]
    public async Task Rspamd_SkipsSubmittersUnlessConfigured_AndMessagesOverMaxSize()
    {
        var options = RspamdOptions();
        Assert.False(Rspamd(options).AppliesTo(Request(GtubeMessage(), submitter: true)));
        Assert.True(Rspamd(options).AppliesTo(Request(GtubeMessage())));
        options.ScanSubmitters = true;
        Assert.True(Rspamd(options).AppliesTo(Request(GtubeMessage(), submitter: true)));
        Assert.False(Rspamd(new RspamdOptions()).AppliesTo(Request(GtubeMessage())));

        options.MaxSize = 100;
        var result = await Rspamd(options).CheckAsync(Request(GtubeMessage()), CancellationToken.None);
        Assert.Same(ContentCheckResult.Pass, result);
    }

    [Fact]
    public async Task Rspamd_CountsEachScanByResult()
    {
        var seen = new List<(string Scanner, string Result)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == PolicyMetrics.MeterName && instrument.Name == "mailmesh.policy.scans")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            var values = tags.ToArray().ToDictionary(t => t.Key, t => t.Value?.ToString());
            lock (seen)
            {
                seen.Add((values["mailmesh.scan.scanner"]!, values["mailmesh.scan.result"]!));
            }
        });
        listener.Start();
        await Rspamd(RspamdOptions()).CheckAsync(Request(GtubeMessage()), CancellationToken.None);
        lock (seen)
        {
            Assert.Contains(("rspamd", "reject"), seen);
        }
    }

    [Theory]
    [InlineData("add header", ScanAction.Tag, null, false)]
    [InlineData("rewrite subject", ScanAction.Tag, null, false)]
    [InlineData("soft reject", ScanAction.TempFail, 451, false)]
    [InlineData("greylist", ScanAction.TempFail, 451, false)]
    [InlineData("add header", ScanAction.Junk, null, true)]
    public void Rspamd_EachAction_MapsToItsConfiguredOutcome(string action, ScanAction configured, int? code, bool junk)
    {
        var options = RspamdOptions();
        options.AddHeaderAction = options.RewriteSubjectAction = options.SoftRejectAction = options.GreylistAction = configured;
        var verdict = RspamdCheck.Parse(Encoding.UTF8.GetBytes(
            $$$"""{"is_skipped":false,"score":7.2,"required_score":15.0,"action":"{{{action}}}","symbols":{"BAD":{"name":"BAD","score":7.2},"ZERO":{"name":"ZERO","score":0.0}},"messages":{}}"""));
        var result = Rspamd(options).Map(verdict);
        Assert.Equal(code, result.Refusal?.ReplyCode);
        Assert.Equal(junk, result.Junk);
        if (code is null)
        {
            Assert.Contains("X-Spam-Flag: YES\r\n", result.Headers);
            Assert.Contains("X-Spam-Symbols: BAD(7.20)\r\n", result.Headers);
        }
        else
        {
            Assert.Equal("4.7.1", result.Refusal!.EnhancedCode);
        }
    }

    [Fact]
    public void Rspamd_Greylist_IsAcceptedByDefault_AsOnlyRspamdsGreylistModuleCanEndAGreylisting()
    {
        var verdict = RspamdCheck.Parse("""{"score":5.2,"required_score":15.0,"action":"greylist","symbols":{}}"""u8);
        var result = Rspamd(RspamdOptions()).Map(verdict);
        Assert.Null(result.Refusal);
        Assert.False(result.Junk);
        Assert.Equal(["X-Spam-Status: No, score=5.20 required=15.00 action=\"greylist\" scanner=rspamd\r\n"], result.Headers);
    }

    [Fact]
    public async Task Clamd_Eicar_IsRefusedWith550NamingTheVirus()
    {
        var result = await Clamd(ClamdOptions()).CheckAsync(Request(EicarMessage()), CancellationToken.None);
        Assert.NotNull(result.Refusal);
        Assert.Equal(550, result.Refusal.ReplyCode);
        Assert.Equal("5.7.1", result.Refusal.EnhancedCode);
        Assert.StartsWith("virus found: " + ClamdServer.SignatureName, result.Refusal.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Clamd_ACleanMessage_Passes_AcrossSeveralChunks()
    {
        // Over 64 KiB: several INSTREAM chunks.
        var body = string.Concat(Enumerable.Repeat("All work and no play makes Jack a dull boy.\r\n", 4000));
        var result = await Clamd(ClamdOptions()).CheckAsync(Request(Message(body)), CancellationToken.None);
        Assert.Null(result.Refusal);
        Assert.Contains("X-Virus-Status: Clean (clamd)\r\n", result.Headers);
    }

    [Fact]
    public async Task Clamd_Down_IsA451()
    {
        var options = ClamdOptions();
        options.Address = $"127.0.0.1:{LoopbackPort.Free()}";
        var result = await Clamd(options).CheckAsync(Request(EicarMessage()), CancellationToken.None);
        Assert.Equal(451, result.Refusal?.ReplyCode);
        Assert.Equal("4.7.1", result.Refusal?.EnhancedCode);
    }

    [Fact]
    public async Task Clamd_OverItsStreamMaxLength_IsUnavailable_NotAccepted()
    {
        // MaxSize above clamd's StreamMaxLength (a misconfiguration): clamd ends the stream, the message is not accepted.
        var options = ClamdOptions();
        options.MaxSize = long.MaxValue;
        var big = Message(new string('x', (int)scanners.Clamd.StreamMaxLength + 1024));
        var result = await Clamd(options).CheckAsync(Request(big), CancellationToken.None);
        Assert.Equal(451, result.Refusal?.ReplyCode);
    }

    [Fact]
    public void BadScannerSettings_StopStartUp_NamingTheKey()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Sqlite",
            ["Storage:SqlitePath"] = PolicyTestHost.NewDatabasePath(),
            ["Policy:Rspamd:Url"] = "ftp://scanner",
            ["Policy:Rspamd:UnavailableAction"] = "Accept",
            ["Policy:Clamd:Address"] = "no port",
        });
        builder.AddPolicy();
        using var host = builder.Build();

        var rspamd = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<RspamdOptions>>().Value);
        Assert.Contains(rspamd.Failures, f => f.StartsWith("Policy:Rspamd:Url:", StringComparison.Ordinal));
        Assert.Contains(rspamd.Failures, f => f.StartsWith("Policy:Rspamd:UnavailableAction:", StringComparison.Ordinal));
        var clamd = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<ClamdOptions>>().Value);
        Assert.Contains(clamd.Failures, f => f.StartsWith("Policy:Clamd:Address:", StringComparison.Ordinal));
    }

    [Fact]
    public void TheScanners_AreRegisteredAsContentChecks_OffByDefault()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Sqlite",
            ["Storage:SqlitePath"] = PolicyTestHost.NewDatabasePath(),
        });
        builder.AddPolicy();
        builder.AddPolicyChecks();
        using var host = builder.Build();
        var checks = host.Services.GetServices<IContentCheck>().Where(c => c is RspamdCheck or ClamdCheck).ToList();
        Assert.Equal(["clamd", "rspamd"], checks.OrderBy(c => c.Order).Select(c => c.Name));
        Assert.All(checks, c => Assert.False(c.AppliesTo(Request(CleanMessage()))));
    }
}
