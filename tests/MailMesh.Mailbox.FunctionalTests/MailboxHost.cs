using System.Net;
using System.Text;
using MailMesh.Mailbox.Protocols;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MailMesh.Testing.Postgres;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Mailbox.FunctionalTests;

/// <summary>
/// The POP3 and IMAP servers in-process on 127.0.0.1:0 over a real mail store: SQLite in a temporary directory, or a
/// fresh PostgreSQL database (<c>postgres: true</c>, needs MAILMESH_TEST_POSTGRES). TLS with a self-signed certificate.
/// </summary>
internal sealed class MailboxHost : IAsyncDisposable
{
    public const string HostName = "mail.test.example";
    public const string User = "alice@test.example";
    public const string Password = "correct horse";

    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);
    private static readonly Lazy<string> Hash = new(() => PasswordHash.Create(Password, PasswordHash.MinIterations));

    private readonly WebApplication _app;
    private readonly string _directory;
    private readonly TestDatabase? _database;
    private long _spoolRecipient;

    private MailboxHost(WebApplication app, string directory, TestDatabase? database)
    {
        _app = app;
        _directory = directory;
        _database = database;
    }

    public IMailStore Store => _app.Services.GetRequiredService<IMailStore>();

    public IPEndPoint Pop3 => Endpoint(MailProtocol.Pop3);

    public IPEndPoint Pop3s => Endpoint(MailProtocol.Pop3s);

    public IPEndPoint Imap => Endpoint(MailProtocol.Imap);

    public IPEndPoint Imaps => Endpoint(MailProtocol.Imaps);

    public MailAccount Account { get; private set; } = null!;

    /// <summary>Accepts the host's self-signed certificate (its subject is the host name) and nothing else.</summary>
    public static bool IsTestCertificate(object sender, System.Security.Cryptography.X509Certificates.X509Certificate? certificate, System.Security.Cryptography.X509Certificates.X509Chain? chain, System.Net.Security.SslPolicyErrors errors) =>
        certificate?.Subject == "CN=" + HostName;

    public static async Task<MailboxHost> StartAsync(Dictionary<string, string?>? settings = null, bool postgres = false)
    {
        var directory = Directory.CreateTempSubdirectory("mailmesh-mailbox-").FullName;
        var database = postgres ? await TestDatabase.CreateAsync("mailmesh_mailbox") : null;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        var configuration = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Mailbox:Pop3Listen"] = "127.0.0.1:0",
            ["Mailbox:Pop3sListen"] = "127.0.0.1:0",
            ["Mailbox:ImapListen"] = "127.0.0.1:0",
            ["Mailbox:ImapsListen"] = "127.0.0.1:0",
            ["Mailbox:HostName"] = HostName,
            ["Mailbox:Tls:SelfSigned"] = "true",
            ["Storage:Provider"] = postgres ? "postgres" : "sqlite",
            ["Storage:SqlitePath"] = Path.Combine(directory, "mail.db"),
            ["ConnectionStrings:Spool"] = database?.ConnectionString,
            ["Storage:MigrateOnStart"] = "true",
        };
        foreach (var (key, value) in settings ?? [])
        {
            configuration[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(configuration);
        builder.AddServiceDefaults("mailmesh-mailbox-tests");
        builder.AddMailMeshStorage();
        builder.AddMailboxProtocols();
        var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        var host = new MailboxHost(app, directory, database);
        host.Account = await host.CreateAccountAsync(User);
        return host;
    }

    public async Task<MailAccount> CreateAccountAsync(string address)
    {
        Assert.True(await Store.CreateAccountAsync(new NewMailAccount { Address = address, PasswordHash = Hash.Value, CreatedAt = T0 }, default));
        return (await Store.GetAccountAsync(address, default))!;
    }

    /// <summary>Delivers a message as local delivery does; returns the bytes as stored (prefix + body).</summary>
    public async Task<byte[]> DeliverAsync(string body, string to = User)
    {
        var prefix = Encoding.ASCII.GetBytes($"Delivered-To: {to}\r\n");
        var recipient = Interlocked.Increment(ref _spoolRecipient);
        var outcome = await Store.DeliverAsync(new LocalDelivery
        {
            SpoolMessageId = Guid.NewGuid(),
            Body = Encoding.UTF8.GetBytes(body),
            DeliveredAt = T0.AddMinutes(recipient),
            Recipients = [new LocalDeliveryRecipient { RecipientId = recipient, Address = to, HeaderPrefix = prefix }],
        }, default);
        Assert.Equal(LocalDeliveryStatus.Stored, outcome[0].Status);
        return [.. prefix, .. Encoding.UTF8.GetBytes(body)];
    }

    private IPEndPoint Endpoint(MailProtocol protocol) =>
        _app.Services.GetRequiredService<ProtocolEndpoints>().Get(protocol) ?? throw new InvalidOperationException(protocol + " is not listening");

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (_database is not null)
        {
            await _database.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Messages the tests deliver: plain, dot-stuffing, multipart with a nested message.</summary>
internal static class Samples
{
    public const string Plain =
        "From: Bob <bob@example.org>\r\nTo: alice@test.example\r\nSubject: Hello\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000\r\n" +
        "Message-ID: <hello@example.org>\r\n\r\nHi Alice,\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\nBye\r\n";

    public const string Multipart =
        "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\nTo: alice@test.example, Carol <carol@example.net>\r\nCc: dave@example.com\r\n" +
        "Subject: Report\r\nDate: Tue, 01 Dec 2026 09:30:00 +0100\r\nMessage-ID: <report@example.org>\r\nMIME-Version: 1.0\r\n" +
        "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
        "The report is attached.\r\nSecond line.\r\n--outer\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n" +
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\nSubject: Inner\r\n\r\n" +
        "inner body\r\n--outer--\r\n";
}
