using System.Net;
using System.Text;
using MailMesh.Mailbox.Protocols;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Benchmarks.Mailbox;

/// <summary>The POP3/IMAP servers in-process over a SQLite mail store in a temporary directory, with one account.</summary>
internal sealed class MailboxServer : IAsyncDisposable
{
    public const string User = "bench@test.example";
    public const string Password = "bench-password";

    private readonly WebApplication _app;
    private readonly string _directory;

    private MailboxServer(WebApplication app, string directory)
    {
        _app = app;
        _directory = directory;
    }

    public IPEndPoint Imap => _app.Services.GetRequiredService<ProtocolEndpoints>().Get(MailProtocol.Imap)!;

    public static async Task<MailboxServer> StartAsync(int messages)
    {
        var directory = Directory.CreateTempSubdirectory("mailmesh-bench-").FullName;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Benchmark" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Mailbox:Pop3Listen"] = string.Empty,
            ["Mailbox:ImapListen"] = "127.0.0.1:0",
            ["Mailbox:AllowPlaintextAuth"] = "true",
            ["Mailbox:HostName"] = "bench.test.example",
            ["Storage:Provider"] = "sqlite",
            ["Storage:SqlitePath"] = Path.Combine(directory, "mail.db"),
            ["Storage:MigrateOnStart"] = "true",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        builder.AddServiceDefaults("mailmesh-benchmarks");
        builder.AddMailMeshStorage();
        builder.AddMailboxProtocols();
        var app = builder.Build();
        await app.StartAsync();
        var store = app.Services.GetRequiredService<IMailStore>();
        var now = DateTimeOffset.UtcNow;
        await store.CreateAccountAsync(new NewMailAccount { Address = User, PasswordHash = PasswordHash.Create(Password, PasswordHash.MinIterations), CreatedAt = now }, default);
        var account = (await store.GetAccountAsync(User, default))!;
        var inbox = (await store.GetFolderAsync(account.Id, "INBOX", default))!;
        for (var i = 0; i < messages; i++)
        {
            await store.AppendAsync(account.Id, inbox.Id, new MessageAppend { Content = Message(i), InternalDate = now }, default);
        }

        return new MailboxServer(app, directory);
    }

    /// <summary>A 2 KiB multipart message, like a transactional mail with a text and an HTML part.</summary>
    private static byte[] Message(int i) => Encoding.ASCII.GetBytes(
        $"From: Shop <noreply@shop.example>\r\nTo: {User}\r\nSubject: Your order {i}\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000\r\n" +
        $"Message-ID: <order-{i}@shop.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n" +
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + string.Concat(Enumerable.Repeat("Thank you for your order.\r\n", 30)) +
        "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + string.Concat(Enumerable.Repeat("<p>Thank you for your order.</p>\r\n", 20)) + "--b--\r\n");

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
