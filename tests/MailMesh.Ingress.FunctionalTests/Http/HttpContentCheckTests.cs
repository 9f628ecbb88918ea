using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using MailMesh.Policy.Content;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MailMesh.Ingress.FunctionalTests.Http;

/// <summary>Issue 10: the content checks for HTTP raw submissions, in memory and with a spilled body: the check reads
/// the message as submitted (Bcc removed), our Authentication-Results goes right under our Received header and a
/// forged one is removed.</summary>
public sealed class HttpContentCheckTests : IDisposable
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;
    private readonly string _spillDirectory = Directory.CreateTempSubdirectory("mailmesh-http-content-").FullName;

    public void Dispose() => Directory.Delete(_spillDirectory, recursive: true);

    [Theory]
    [InlineData(100)]
    [InlineData(400 * 1024)]
    public async Task A_raw_submission_gets_our_Authentication_Results_and_loses_a_forged_one(int bodyOctets)
    {
        var check = new ScriptedContentCheck();
        await using var host = await HttpApiHost.StartAsync(
            new()
            {
                ["Ingress:MemoryBodyThreshold"] = "65536",
                ["Ingress:SpillDirectory"] = _spillDirectory,
            },
            services => services.TryAddEnumerable(ServiceDescriptor.Singleton<IContentCheck>(check)));
        using var client = host.CreateClient();
        const string Headers = "From: a@example.com\r\nTo: b@example.org\r\nSubject: checked\r\n";
        const string Forged = "Authentication-Results: mx.test.example; dmarc=pass\r\n";
        var body = new StringBuilder("\r\n");
        for (var line = 0; body.Length + 100 <= bodyOctets; line++)
        {
            body.Append(line.ToString("D10", CultureInfo.InvariantCulture)).Append('x', 88).Append("\r\n");
        }

        var raw = new ByteArrayContent(Encoding.ASCII.GetBytes(Forged + Headers + body));
        raw.Headers.ContentType = new MediaTypeHeaderValue("message/rfc822");
        var response = await client.PostAsync("/api/v1/messages", raw, Timeout);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync(Timeout));

        Assert.True(check.Request!.IsSubmitter);
        // As submitted, with the headers the API adds (Date, Message-ID) and before ours.
        var read = Encoding.ASCII.GetString(check.Read!);
        Assert.StartsWith(Forged + Headers, read, StringComparison.Ordinal);
        Assert.EndsWith(body.ToString(), read, StringComparison.Ordinal);
        Assert.Equal(check.Read!.Length, check.Request.Length);

        var stored = await host.Spool.Inner.GetMessageAsync(Assert.Single(host.Spool.Stored), Timeout);
        string content;
        if (stored!.DetachedContentLength is null)
        {
            content = Encoding.ASCII.GetString(stored.Content.Span);
        }
        else
        {
            using var copy = new MemoryStream();
            Assert.True(await host.Spool.Inner.CopyContentAsync(stored.Id, copy, Timeout));
            content = Encoding.ASCII.GetString(copy.ToArray());
        }

        Assert.StartsWith("Received: ", content, StringComparison.Ordinal);
        var ours = content.IndexOf("\r\nAuthentication-Results:", StringComparison.Ordinal) + 2;
        Assert.StartsWith("Authentication-Results: mx.test.example;\r\n\tx-test=pass\r\nX-Test: checked\r\n", content[ours..], StringComparison.Ordinal);
        Assert.Equal(1, content.Split("Authentication-Results:").Length - 1);
        Assert.Contains("\r\nX-Test: checked\r\n" + Headers, content, StringComparison.Ordinal);
        Assert.EndsWith(body.ToString(), content, StringComparison.Ordinal);
    }
}
