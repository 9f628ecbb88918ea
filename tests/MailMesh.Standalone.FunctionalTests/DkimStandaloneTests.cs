using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using MailKit.Net.Smtp;
using MailMesh.Delivery.Dkim;
using MailMesh.Testing.Dkim;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Smtp;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// DKIM end to end in the built Standalone: mail submitted over SMTP and over the HTTP API, a 3 MiB message and a bounce
/// DSN arrive at the destination signed by the documented key (the last listed of the domain's signing keys) and verify
/// with dkimpy, opendkim-testmsg and MimeKit, the public key served by the test DNS server; mail from a domain without a
/// key arrives unsigned; a bad key stops start-up naming it.
/// </summary>
public sealed class DkimStandaloneTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly RelayBench _bench = new("mailmesh-standalone-dkim-");
    private readonly Dictionary<string, string> _records = [];

    public Task InitializeAsync()
    {
        _bench.Dns.AddAddress("mx.test", "127.0.0.1")
            .AddMx("dest.test", 10, "mx.test")
            .AddMx("origin.test", 10, "mx.test");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _bench.DisposeAsync();

    private Dictionary<string, string> Settings()
    {
        var settings = _bench.Settings();
        settings["Queue:Hostname"] = "mx.origin.test";

        // Rotation: "old" signed until "new" was listed after it; "next" is published ahead, not signing yet.
        Key(settings, 0, "origin.test", "old", DkimAlgorithm.RsaSha256, sign: true);
        Key(settings, 1, "origin.test", "next", DkimAlgorithm.Ed25519Sha256, sign: false);
        Key(settings, 2, "origin.test", "new", DkimAlgorithm.RsaSha256, sign: true);
        return settings;
    }

    [Fact]
    public async Task SMTP_HTTP_large_and_DSN_mail_arrives_signed_by_the_active_selector_and_verifies()
    {
        await using var mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, Settings());

        await SendAsync(mailmesh.SmtpPort, "app@origin.test", "user@dest.test", "over smtp", "hello\r\n");
        await SendAsync(mailmesh.SmtpPort, "app@origin.test", "user@dest.test", "large", new string('x', 70) + "\r\n", repeat: 3 * 1024 * 1024 / 72);
        await SendAsync(mailmesh.SmtpPort, "someone@unsigned.test", "user@dest.test", "no key", "hello\r\n");
        await SendAsync(mailmesh.SmtpPort, "app@origin.test", "user@nowhere.test", "bounces", "hello\r\n");
        using (var http = TestKeys.Client(mailmesh.HttpPort, TestKeys.Submission))
        {
            var raw = new ByteArrayContent(Encoding.ASCII.GetBytes("From: App <app@origin.test>\r\nTo: user@dest.test\r\nSubject: over http\r\n\r\nhello\r\n"));
            raw.Headers.ContentType = new MediaTypeHeaderValue("message/rfc822");
            var response = await http.PostAsync(new Uri("/api/v1/messages", UriKind.Relative), raw);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        // Four to dest.test, and the DSN for nowhere.test (no such domain) back to app@origin.test.
        var delivered = await _bench.Sink.WaitForMessagesAsync(5, Patience);
        var bySubject = delivered.ToDictionary(m => MimeMessage.Load(new MemoryStream(m.Data)).Subject ?? string.Empty);
        Assert.Contains(bySubject.Keys, s => s.StartsWith("Undelivered", StringComparison.Ordinal));

        foreach (var (subject, message) in bySubject)
        {
            var text = Encoding.UTF8.GetString(message.Data);
            var signatures = text.Split("\r\n").Count(l => l.StartsWith("DKIM-Signature:", StringComparison.OrdinalIgnoreCase));
            if (subject == "no key")
            {
                Assert.Equal(0, signatures);
                continue;
            }

            Assert.Equal(1, signatures);
            Assert.StartsWith("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=origin.test; s=new;", text, StringComparison.Ordinal);
            var dkimpy = await DkimVerifiers.DkimpyAsync(message.Data, _bench.Dns);
            Assert.True(dkimpy.Pass, $"{subject}: {dkimpy.Output}");
            var opendkim = await DkimVerifiers.OpenDkimAsync(message.Data, _records);
            Assert.True(opendkim.Pass, $"{subject}: {opendkim.Output}");
            Assert.True(await DkimVerifiers.MimeKitAsync(message.Data, _records), subject);
        }

        Assert.True(bySubject["large"].Data.Length > 3 * 1024 * 1024);
    }

    [Theory]
    [InlineData("KeyPath", "/nonexistent/dkim.pem")]
    [InlineData("Algorithm", "ed25519-sha256")]
    [InlineData("Selector", "old")]
    public async Task A_bad_key_stops_start_up_naming_it(string setting, string value)
    {
        var settings = Settings();
        settings["Dkim:Keys:2:" + setting] = value;
        var (exitCode, output) = await StandaloneProcess.RunToExitAsync(_bench.WorkingDirectory.FullName, settings);
        Assert.Equal(2, exitCode);
        Assert.Contains("configuration error", output, StringComparison.Ordinal);
        Assert.Contains("Dkim:Keys:2:", output, StringComparison.Ordinal);
    }

    private void Key(Dictionary<string, string> settings, int index, string domain, string selector, DkimAlgorithm algorithm, bool sign)
    {
        var path = Path.Combine(_bench.WorkingDirectory.FullName, $"{selector}.{domain}.pem");
        using var key = DkimPrivateKey.Generate(algorithm);
        File.WriteAllText(path, key.ToPem());
        var prefix = $"Dkim:Keys:{index}:";
        settings[prefix + "Domain"] = domain;
        settings[prefix + "Selector"] = selector;
        settings[prefix + "KeyPath"] = path;
        settings[prefix + "Algorithm"] = DkimPrivateKey.Name(algorithm);
        settings[prefix + "Sign"] = sign ? "true" : "false";
        _records[$"{selector}._domainkey.{domain}"] = key.RecordText();
        _bench.Dns.AddTxt($"{selector}._domainkey.{domain}", key.RecordText());
    }

    private static async Task SendAsync(int port, string from, string to, string subject, string line, int repeat = 1)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = subject;
        message.Body = new TextPart("plain") { Text = string.Concat(Enumerable.Repeat(line, repeat)) };
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, MailKit.Security.SecureSocketOptions.None);
        await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
    }
}
