using System.Globalization;
using System.Net;
using MailMesh.ServiceDefaults;
using MailMesh.Testing.Https;
using MailMesh.Testing.Infrastructure;
using MailMesh.Testing.Postgres;
using Microsoft.AspNetCore.Builder;
using Npgsql;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>
/// Replicas of the admin UI service (as its Program.cs starts it) on one PostgreSQL database, as the chart runs them
/// behind one Service: a login made on one replica is a session on every other, antiforgery tokens cross replicas,
/// failures spread over replicas lock the account on all of them, and sessions outlive a restart of every replica.
/// The admin API is not needed (its URL refuses connections: the pages show that as an alert, in a 200 page).
/// </summary>
public sealed class AdminReplicaTests : IAsyncLifetime
{
    private const int MaxFailedLogins = 4;
    private readonly List<WebApplication> _replicas = [];
    private readonly HashSet<WebApplication> _stopped = [];
    private readonly int _noApi = LoopbackPort.Free();
    private TestDatabase _database = null!;

    public async Task InitializeAsync() => _database = await TestDatabase.CreateAsync("mailmesh_admin");

    public async Task DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await StopAsync(replica);
            await replica.DisposeAsync();
        }

        await _database.DisposeAsync();
    }

    private async Task StopAsync(WebApplication replica)
    {
        if (_stopped.Add(replica))
        {
            await replica.StopAsync();
        }
    }

    /// <summary>Builds one replica on the shared database (not started); its base URL.</summary>
    private (WebApplication App, Uri Url) Replica()
    {
        var port = LoopbackPort.Free();
        var api = $"http://127.0.0.1:{_noApi.ToString(CultureInfo.InvariantCulture)}/";
        var settings = new Dictionary<string, string>
        {
            ["Urls"] = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}",
            ["ConnectionStrings:Spool"] = _database.ConnectionString,
            ["Storage:MigrateOnStart"] = "true",
            ["Admin:Ui:QueueUrl"] = api,
            ["Admin:Ui:PolicyUrl"] = api,
            ["Admin:Ui:ApiKey"] = AdminUiHost.ApiKey,
            ["Admin:Ui:SecureCookie"] = "false",
            ["Admin:Ui:MaxFailedLogins"] = MaxFailedLogins.ToString(CultureInfo.InvariantCulture),
            ["Admin:Users:0:Name"] = AdminUiHost.Admin,
            ["Admin:Users:0:PasswordHash"] = AdminUiHost.Hash,
            ["Admin:Users:0:Role"] = "admin",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        var app = ServiceHost.Create(
            [.. settings.Select(s => $"--{s.Key}={s.Value}")],
            "mailmesh-admin",
            builder => builder.AddAdminUi(),
            app => app.MapAdminUi(),
            BusTransport.InMemory);
        _replicas.Add(app);
        return (app, new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/"));
    }

    /// <summary>Starts <paramref name="count"/> replicas at once (as a Deployment's pods do), on one fresh key ring.</summary>
    private async Task<Uri[]> StartAsync(int count)
    {
        var replicas = Enumerable.Range(0, count).Select(_ => Replica()).ToList();
        await Task.WhenAll(replicas.Select(r => r.App.StartAsync()));
        return [.. replicas.Select(r => r.Url)];
    }

    private static Task<HttpResponseMessage> LogInAsync(AdminUiBrowser browser, Uri readFrom, Uri postTo, string password) =>
        browser.PostFormAsync(readFrom, postTo, "admin/login", "login", new Dictionary<string, string> { ["Name"] = AdminUiHost.Admin, ["Password"] = password });

    private static async Task AssertLoggedInAsync(AdminUiBrowser browser, Uri replica)
    {
        using var page = await browser.GetAsync(replica, "admin");
        Assert.True(page.StatusCode == HttpStatusCode.OK, $"{replica}admin answered {(int)page.StatusCode} {page.Headers.Location}");
        Assert.Contains($"<span class=\"who\">{AdminUiHost.Admin}", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private async Task<long> KeyCountAsync()
    {
        await using var connection = new NpgsqlConnection(_database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM spool.admin_ui_keys", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task A_login_on_one_replica_is_a_session_on_every_other_and_outlives_a_restart_of_all()
    {
        var replicas = await StartAsync(2);
        var (a, b) = (replicas[0], replicas[1]);

        // Started together, the replicas agreed on one key (the first one under the store's lock).
        Assert.Equal(1, await KeyCountAsync());

        using var browser = new AdminUiBrowser();
        using (var anonymous = await browser.GetAsync(b, "admin"))
        {
            Assert.Equal(HttpStatusCode.Redirect, anonymous.StatusCode);
            Assert.Contains("/admin/login", anonymous.Headers.Location!.OriginalString, StringComparison.Ordinal);
        }

        // The form read from A (its antiforgery token and cookie) is posted to B: the load balancer may do that.
        using (var login = await LogInAsync(browser, a, b, AdminUiHost.Password))
        {
            Assert.True(login.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.Found or HttpStatusCode.SeeOther,
                $"login answered {(int)login.StatusCode}: {await login.Content.ReadAsStringAsync()}");
        }

        Assert.Contains(AdminUiExtensions.CookieName, browser.Cookies.Keys);
        await AssertLoggedInAsync(browser, a);
        await AssertLoggedInAsync(browser, b);

        // Every replica stops (a rolling restart's end state) and a new one starts: the cookie is still a session.
        foreach (var replica in _replicas.ToList())
        {
            await StopAsync(replica);
        }

        var (after, url) = Replica();
        await after.StartAsync();
        await AssertLoggedInAsync(browser, url);
        Assert.Equal(1, await KeyCountAsync());
    }

    [Fact]
    public async Task Failures_spread_over_replicas_lock_the_account_on_every_replica()
    {
        var replicas = await StartAsync(2);
        using var browser = new AdminUiBrowser();
        for (var i = 0; i < MaxFailedLogins; i++)
        {
            var replica = replicas[i % 2];
            using var failed = await LogInAsync(browser, replica, replica, "wrong " + i);
            Assert.Equal(HttpStatusCode.OK, failed.StatusCode);
            Assert.Contains("Wrong name or password.", await failed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Each replica saw only half of the failures; the right password is refused on both.
        foreach (var replica in replicas)
        {
            using var refused = await LogInAsync(browser, replica, replica, AdminUiHost.Password);
            Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
            Assert.Contains("This account is locked", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.DoesNotContain(AdminUiExtensions.CookieName, browser.Cookies.Keys);
        }
    }
}
