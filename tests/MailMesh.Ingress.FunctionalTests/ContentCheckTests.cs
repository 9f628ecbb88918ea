using System.Text;
using MailMesh.Contracts;
using MailMesh.Policy.Content;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>A content check the test scripts: what it answers, and what it read.</summary>
internal sealed class ScriptedContentCheck : IContentCheck
{
    public string Name => "scripted";

    public int Order => 100;

    public IReadOnlyCollection<string> StampedFields { get; init; } = [];

    public Func<ContentCheckRequest, ContentCheckResult> Answer { get; set; } =
        _ => new ContentCheckResult { AuthenticationResults = ["x-test=pass"], Headers = ["X-Test: checked\r\n"] };

    public byte[]? Read { get; private set; }

    public ContentCheckRequest? Request { get; private set; }

    public bool AppliesTo(ContentCheckRequest request) => true;

    public async Task<ContentCheckResult> CheckAsync(ContentCheckRequest request, CancellationToken cancellationToken)
    {
        Request = request;
        await using (var stream = request.OpenContent())
        using (var copy = new MemoryStream())
        {
            await stream.CopyToAsync(copy, cancellationToken);
            Read = copy.ToArray();
        }

        return Answer(request);
    }
}

/// <summary>
/// Issue 10: Policy's ContentChecks at the end of DATA, in MessageAcceptor: the checks read the client's content as sent,
/// one Authentication-Results goes right under our Received header, forged ones with our authserv-id and the junk mark
/// are removed, a refusal is the reply, a failing check is 451 4.7.1; in memory and for a spilled message.
/// </summary>
public sealed class ContentCheckTests : IDisposable
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;
    private readonly string _spillDirectory = Directory.CreateTempSubdirectory("mailmesh-content-").FullName;

    private const string ClientHeaders =
        "Authentication-Results: MX.test.example; dkim=pass header.d=bank.example\r\n"
        + "Authentication-Results: other.example;\r\n\tspf=pass smtp.mailfrom=a@example.com\r\n"
        + "X-MailMesh-Junk: no\r\n"
        + "Authentication-Results: (comment) mx.test.example;\r\n\tdmarc=pass\r\n"
        + "From: a@example.com\r\nSubject: checked\r\n\r\n";

    public void Dispose() => Directory.Delete(_spillDirectory, recursive: true);

    private Task<IngressHost> StartAsync(ScriptedContentCheck check) => IngressHost.StartAsync(
        new()
        {
            ["Ingress:MemoryBodyThreshold"] = "65536",
            ["Ingress:SpillDirectory"] = _spillDirectory,
            ["Policy:Content:Timeout"] = "00:00:02",
        },
        services => services.TryAddEnumerable(ServiceDescriptor.Singleton<IContentCheck>(check)));

    private static async Task<(Reply Reply, Guid? Id)> SendAsync(IngressHost host, string message)
    {
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync(Encoding.Latin1.GetBytes(message + ".\r\n"));
        var reply = await client.ReadReplyAsync();
        return (reply, reply.Code == 250 ? Guid.Parse(reply.Lines[^1][(reply.Lines[^1].LastIndexOf(' ') + 1)..]) : null);
    }

    private static async Task<string> StoredAsync(IngressHost host, Guid id)
    {
        var stored = await host.Spool.Inner.GetMessageAsync(id, Timeout);
        if (stored!.DetachedContentLength is null)
        {
            return Encoding.Latin1.GetString(stored.Content.Span);
        }

        using var copy = new MemoryStream();
        Assert.True(await host.Spool.Inner.CopyContentAsync(id, copy, Timeout));
        return Encoding.Latin1.GetString(copy.ToArray());
    }

    private static string Body(int octets)
    {
        var text = new StringBuilder(octets + 100);
        for (var line = 0; text.Length + 100 <= octets; line++)
        {
            text.Append(line.ToString("D10", System.Globalization.CultureInfo.InvariantCulture)).Append('x', 88).Append("\r\n");
        }

        return text.ToString();
    }

    [Theory]
    [InlineData(100)]
    [InlineData(400 * 1024)]
    public async Task Authentication_Results_goes_under_our_Received_header_and_forged_ones_are_removed(int bodyOctets)
    {
        var check = new ScriptedContentCheck();
        await using var host = await StartAsync(check);
        var body = Body(bodyOctets);

        var (reply, id) = await SendAsync(host, ClientHeaders + body);

        Assert.Equal(250, reply.Code);
        Assert.Equal(ClientHeaders + body, Encoding.Latin1.GetString(check.Read!));
        Assert.Equal(check.Read!.Length, check.Request!.Length);
        Assert.False(check.Request.IsSubmitter);
        Assert.Equal("client.test", check.Request.ClientHelo);

        var stored = await StoredAsync(host, id!.Value);
        Assert.StartsWith("Received: from client.test", stored, StringComparison.Ordinal);
        var afterReceived = stored[(stored.IndexOf("\r\nAuthentication-Results:", StringComparison.Ordinal) + 2)..];
        Assert.Equal(
            "Authentication-Results: mx.test.example;\r\n\tx-test=pass\r\n"
            + "X-Test: checked\r\n"
            + "Authentication-Results: other.example;\r\n\tspf=pass smtp.mailfrom=a@example.com\r\n"
            + "From: a@example.com\r\nSubject: checked\r\n\r\n" + body,
            afterReceived);
        Assert.DoesNotContain("X-MailMesh-Junk", stored, StringComparison.Ordinal);
    }

    /// <summary>A client's own X-Spam-Status (a field a registered scanner stamps) would pass for our verdict: it goes.</summary>
    [Fact]
    public async Task A_clients_fields_of_the_names_a_check_stamps_are_removed()
    {
        var check = new ScriptedContentCheck
        {
            StampedFields = ["X-Spam-Status", "X-Spam-Flag"],
            Answer = _ => new ContentCheckResult { Headers = ["X-Spam-Status: Yes, score=9.0\r\n"] },
        };
        await using var host = await StartAsync(check);

        var (reply, id) = await SendAsync(host, "X-Spam-Status: No, score=-100\r\nx-spam-flag: NO\r\nX-Spam-Level: *\r\n" + ClientHeaders + "body\r\n");

        Assert.Equal(250, reply.Code);
        var stored = await StoredAsync(host, id!.Value);
        Assert.Contains("X-Spam-Status: Yes, score=9.0\r\n", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("score=-100", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("x-spam-flag", stored, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("X-Spam-Level: *\r\n", stored, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_junk_verdict_marks_the_message()
    {
        var check = new ScriptedContentCheck { Answer = _ => new ContentCheckResult { Junk = true, Reason = "dmarc p=quarantine", AuthenticationResults = ["dmarc=fail"] } };
        await using var host = await StartAsync(check);

        var (reply, id) = await SendAsync(host, ClientHeaders + "body\r\n");

        Assert.Equal(250, reply.Code);
        var stored = await StoredAsync(host, id!.Value);
        Assert.Contains("\r\nAuthentication-Results: mx.test.example;\r\n\tdmarc=fail\r\nX-MailMesh-Junk: dmarc p=quarantine\r\nAuthentication-Results: other.example;", stored, StringComparison.Ordinal);
        Assert.True(MailMesh.Storage.JunkHeader.IsIn(Encoding.Latin1.GetBytes(stored)));
    }

    [Fact]
    public async Task A_refusal_is_the_reply_and_nothing_is_stored()
    {
        var check = new ScriptedContentCheck { Answer = _ => ContentCheckResult.Refuse(550, "5.7.1", "DMARC policy of example.com is reject") };
        await using var host = await StartAsync(check);

        var (reply, _) = await SendAsync(host, ClientHeaders + "body\r\n");

        Assert.Equal(550, reply.Code);
        Assert.Equal("5.7.1", reply.Enhanced);
        Assert.Contains("DMARC policy", reply.Text, StringComparison.Ordinal);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task A_check_that_throws_or_hangs_is_a_451_never_an_acceptance()
    {
        var check = new ScriptedContentCheck { Answer = _ => throw new InvalidOperationException("engine down") };
        await using var host = await StartAsync(check);
        var (reply, _) = await SendAsync(host, ClientHeaders + "body\r\n");
        Assert.Equal(451, reply.Code);
        Assert.Equal("4.7.1", reply.Enhanced);

        var hung = new HangingCheck();
        await using var second = await IngressHost.StartAsync(
            new() { ["Policy:Content:Timeout"] = "00:00:01" },
            services => services.TryAddEnumerable(ServiceDescriptor.Singleton<IContentCheck>(hung)));
        (reply, _) = await SendAsync(second, ClientHeaders + "body\r\n");
        Assert.Equal(451, reply.Code);
        Assert.Equal("4.7.1", reply.Enhanced);
        Assert.Empty(host.Spool.Stored);
        Assert.Empty(second.Spool.Stored);
    }

    private sealed class HangingCheck : IContentCheck
    {
        public string Name => "hanging";

        public int Order => 200;

        public bool AppliesTo(ContentCheckRequest request) => true;

        public async Task<ContentCheckResult> CheckAsync(ContentCheckRequest request, CancellationToken cancellationToken)
        {
            // Ignores its token, as a stuck engine client might.
            await Task.Delay(System.Threading.Timeout.InfiniteTimeSpan, CancellationToken.None);
            return ContentCheckResult.Pass;
        }
    }
}
