using System.Globalization;
using System.Text.RegularExpressions;
using MailMesh.ServiceDefaults;
using MailMesh.Testing.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>
/// The admin UI as the distributed mode runs it: a service of its own (as its Program.cs starts it) calling the admin
/// API of another process with its configured key; and bad configuration stopping it with the key named. Its logins are
/// kept in a SQLite file of its own here (one process); replicas on PostgreSQL are <see cref="AdminReplicaTests"/>.
/// </summary>
public sealed class AdminServiceTests(AdminUiHost host) : IClassFixture<AdminUiHost>, IDisposable
{
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("mailmesh-admin-service-");

    public void Dispose()
    {
        try
        {
            _data.Delete(recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold the file for a moment; the temporary directory is only litter.
        }
    }

    private static WebApplication Create(IReadOnlyDictionary<string, string> settings) =>
        ServiceHost.Create(
            [.. settings.Select(s => $"--{s.Key}={s.Value}")],
            "mailmesh-admin",
            builder => builder.AddAdminUi(),
            app => app.MapAdminUi(),
            BusTransport.InMemory);

    [Fact]
    public async Task The_ui_on_its_own_logs_in_and_shows_what_the_other_process_holds()
    {
        var port = LoopbackPort.Free();
        var api = host.BaseUrl.ToString();
        await using var admin = Create(new Dictionary<string, string>
        {
            ["Urls"] = $"http://127.0.0.1:{port}",
            ["Admin:Ui:QueueUrl"] = api,
            ["Admin:Ui:PolicyUrl"] = api,
            ["Admin:Ui:ApiKey"] = AdminUiHost.ApiKey,
            ["Admin:Ui:SecureCookie"] = "false",
            ["Admin:Users:0:Name"] = "ada",
            ["Admin:Users:0:PasswordHash"] = AdminUiHost.Hash,
            ["Admin:Users:0:Role"] = "admin",
            ["Storage:Provider"] = "sqlite",
            ["Storage:SqlitePath"] = Path.Combine(_data.FullName, "admin.db"),
            ["Storage:MigrateOnStart"] = "true",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        await admin.StartAsync();

        var context = await host.Browser.NewContextAsync(new() { BaseURL = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/" });
        var page = await context.NewPageAsync();
        await page.GotoAsync("admin/access");
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync("ada");
        await page.GetByLabel("Password", new() { Exact = true }).FillAsync(AdminUiHost.Password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();

        // The keys page lists the standalone's admin keys: the answer came over HTTP from the other process.
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Keys and users", Level = 1 })).ToBeVisibleAsync();
        await Expect(page.GetByRole(AriaRole.Row).Filter(new() { HasText = "admin-ui-service" })).ToHaveCountAsync(1);
        await page.GetByRole(AriaRole.Link, new() { Name = "Dashboard" }).ClickAsync();
        await Expect(page.GetByTestId("queue-total")).ToBeVisibleAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToHaveCountAsync(0);
        await page.ScreenshotAsync(new() { Path = Path.Combine(AdminUiHost.Screenshots, "service-keys.png") });
        await Expect(page).ToHaveURLAsync(new Regex("/admin$"));
        await context.DisposeAsync();
    }

    [Theory]
    [InlineData("Admin:Ui:QueueUrl", "", "Admin:Ui:QueueUrl: required")]
    [InlineData("Admin:Ui:PolicyUrl", "ftp://policy/", "Admin:Ui:PolicyUrl: 'ftp://policy/' is not an absolute http:// or https:// URL")]
    [InlineData("Admin:Users:0:Role", "root", "Admin:Users:0:Role: 'root' is not a role")]
    [InlineData("Admin:Users:0:PasswordHash", "secret", "Admin:Users:0:PasswordHash: must be pbkdf2-sha256")]
    [InlineData("Storage:Provider", "postgres", "ConnectionStrings:Spool: is required when Storage:Provider is postgres")]
    public async Task Bad_configuration_stops_start_up_naming_the_key(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Admin:Ui:QueueUrl"] = "http://queue:8080",
            ["Admin:Ui:PolicyUrl"] = "http://policy:8080",
            ["Admin:Ui:ApiKey"] = AdminUiHost.ApiKey,
            ["Admin:Users:0:Name"] = "ada",
            ["Admin:Users:0:PasswordHash"] = AdminUiHost.Hash,
            ["Admin:Users:0:Role"] = "admin",
            ["Storage:Provider"] = "sqlite",
            ["Storage:SqlitePath"] = Path.Combine(_data.FullName, "bad.db"),
            ["Logging:LogLevel:Default"] = "None",
        };
        settings[key] = value;
        await using var admin = Create(settings);
        var error = await Assert.ThrowsAnyAsync<Exception>(() => admin.StartAsync());
        Assert.True(ConfigurationErrors.TryDescribe(error, out var message), error.ToString());
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }
}
