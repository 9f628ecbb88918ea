using System.Globalization;
using System.Text;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Testing.Dkim;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Infrastructure;
using MailMesh.Testing.Smtp;
using Microsoft.AspNetCore.Builder;
using Microsoft.Playwright;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>
/// A running standalone (SQLite, in-memory bus, in this process as Program.cs starts it) serving the UI at /admin, with
/// a test DNS server pointing dest.test at an SMTP sink that defers everything (so mail stays in the queue), two UI
/// accounts, and headless Debian chromium driven by Playwright. One per test class.
/// </summary>
public sealed class AdminUiHost : IAsyncLifetime
{
    public const string Operator = "olivia";
    public const string Viewer = "victor";

    /// <summary>A UI account with the admin role (webhooks, keys and users, mailboxes).</summary>
    public const string Admin = "ada";
    public const string Password = "correct horse battery";

    /// <summary>An admin API key configured in the standalone, for a UI running as a service of its own.</summary>
    public const string ApiKey = "mmk_test-admin-ui-service";

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("mailmesh-admin-ui-");
    private WebApplication? _app;
    private IPlaywright? _playwright;

    public TestDnsServer Dns { get; } = TestDnsServer.Start();

    public SmtpSink Sink { get; } = SmtpSink.Start();

    public int HttpPort { get; } = LoopbackPort.Free();

    public int SmtpPort { get; } = LoopbackPort.Free();

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>The hash of <see cref="Password"/> (the fewest iterations the format takes: these tests are not about its cost).</summary>
    public static string Hash { get; } = PasswordHash.Create(Password, PasswordHash.MinIterations);

    public Uri BaseUrl => new($"http://127.0.0.1:{HttpPort}/");

    /// <summary>Where screenshots go: TestResults/screenshots beside the test assembly (kept as test artifacts).</summary>
    public static string Screenshots { get; } = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");

    /// <summary>Debian's chromium (deploy/scripts/deps.sh installs it); MAILMESH_CHROMIUM overrides the path.</summary>
    public static string Chromium => Environment.GetEnvironmentVariable("MAILMESH_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public async Task InitializeAsync()
    {
        Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        Dns.AddMx("origin.test", 10, "mx.dest.test");

        // Every recipient is deferred by the sink, and not retried for minutes: what a test holds stays put.
        foreach (var local in new[] { "search", "bulk", "viewer" })
        {
            Sink.RecipientReplies[$"{local}@dest.test"] = "451 4.3.0 not now";
        }

        // A DKIM key, so the DKIM page has a record to show (RSA: what .NET makes without a library).
        var dkimKey = Path.Combine(_directory.FullName, "dkim-s2026.pem");
        using (var rsa = System.Security.Cryptography.RSA.Create(2048))
        {
            await File.WriteAllTextAsync(dkimKey, rsa.ExportPkcs8PrivateKeyPem());
        }

        var hash = Hash;
        var settings = new Dictionary<string, string>
        {
            ["Urls"] = BaseUrl.ToString().TrimEnd('/'),
            ["Ingress:Listen"] = $"127.0.0.1:{SmtpPort}",
            ["Mailbox:Pop3Listen"] = "127.0.0.1:0",
            ["Mailbox:ImapListen"] = "127.0.0.1:0",
            ["Storage:SqlitePath"] = Path.Combine(_directory.FullName, "mailmesh.db"),
            ["Dns:Servers"] = Dns.EndPoint.ToString(),
            ["Delivery:Port"] = Sink.Port.ToString(CultureInfo.InvariantCulture),
            ["Queue:FirstRetryDelay"] = "00:10:00",
            ["Queue:Jitter"] = "0",
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Admin:Users:0:Name"] = Operator,
            ["Admin:Users:0:PasswordHash"] = hash,
            ["Admin:Users:0:Role"] = "operator",
            ["Admin:Users:1:Name"] = Viewer,
            ["Admin:Users:1:PasswordHash"] = hash,
            ["Admin:Users:1:Role"] = "viewer",
            ["Admin:Users:2:Name"] = Admin,
            ["Admin:Users:2:PasswordHash"] = hash,
            ["Admin:Users:2:Role"] = "admin",
            ["Admin:ApiKeys:0:Name"] = "admin-ui-service",
            ["Admin:ApiKeys:0:Hash"] = ApiKeys.Hash(ApiKey),
            ["Admin:ApiKeys:0:Scopes"] = string.Join(' ', AdminScopes.All),
            ["Logging:LogLevel:Default"] = "Warning",
            ["Dkim:Keys:0:Domain"] = "origin.test",
            ["Dkim:Keys:0:Selector"] = "s2026",
            ["Dkim:Keys:0:KeyPath"] = dkimKey,
        };
        _app = ServiceHost.Create(
            [.. settings.Select(s => $"--{s.Key}={s.Value}")],
            "mailmesh-standalone",
            builder => Standalone.StandaloneExtensions.AddStandalone(builder),
            app => Standalone.StandaloneExtensions.MapStandaloneEndpoints(app),
            BusTransport.InMemory);
        await _app.StartAsync();

        Directory.CreateDirectory(Screenshots);
        if (!File.Exists(Chromium))
        {
            throw new InvalidOperationException($"No chromium at {Chromium}: run MAILMESH_TEST_TOOLS=1 deploy/scripts/deps.sh (or set MAILMESH_CHROMIUM)");
        }

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            // As root (containers, CI) chromium refuses to start with its sandbox.
            Args = Environment.UserName == "root" ? ["--no-sandbox"] : [],
        });
    }

    /// <summary>A fresh browser context (no cookies) with a laptop-sized page at the UI.</summary>
    public async Task<IPage> NewPageAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = BaseUrl.ToString(),
            ViewportSize = new ViewportSize { Width = 1280, Height = 800 },
        });
        return await context.NewPageAsync();
    }

    /// <summary>A fresh page logged in as <paramref name="user"/> (through the login form), at <paramref name="path"/>.</summary>
    public async Task<IPage> LogInAsync(string user, string path = "admin")
    {
        var page = await NewPageAsync();
        await page.GotoAsync(path);
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync(user);
        await page.GetByLabel("Password", new() { Exact = true }).FillAsync(Password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await Assertions.Expect(page.Locator("header .who")).ToContainTextAsync(user);
        return page;
    }

    /// <summary>
    /// Opens <paramref name="url"/> and reloads it until <paramref name="condition"/> holds (mail reaches a state
    /// asynchronously); fails after a minute naming <paramref name="what"/>.
    /// </summary>
    public static async Task ReloadUntilAsync(IPage page, string url, Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        await page.GotoAsync(url);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{url} did not show {what} within a minute");
            await page.WaitForTimeoutAsync(250);
            await page.ReloadAsync();
        }
    }

    /// <summary>A full-page screenshot into <see cref="Screenshots"/> (kept as a test artifact; docs/images take theirs from there).</summary>
    public static Task ScreenshotAsync(IPage page, string name) =>
        page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, name + ".png"), FullPage = true });

    /// <summary>Sends a message from app@origin.test to <paramref name="to"/> through Ingress; returns its id.</summary>
    public async Task<Guid> SendAsync(string to, string subject)
    {
        var message = Encoding.ASCII.GetBytes($"From: app@origin.test\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{Guid.NewGuid()}@origin.test>\r\n\r\nadmin ui\r\n");
        var (code, text) = await RawSmtp.SendAsync(SmtpPort, "app@origin.test", to, message);
        Assert.True(code == 250, $"Ingress refused the message: {text}");
        return Guid.Parse(text[(text.LastIndexOf(' ') + 1)..]);
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        await Sink.DisposeAsync();
        Dns.Dispose();
        try
        {
            _directory.Delete(recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold the file for a moment; the temporary directory is only litter.
        }
    }
}
