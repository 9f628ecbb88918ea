using System.Text.RegularExpressions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>
/// The admin UI in a real browser (Debian's chromium, headless, driven by Playwright) against a running standalone:
/// login (a wrong password refused), message search and a message's timeline, a bulk hold and release, a suppression
/// added and removed, and what a viewer is not offered. Screenshots of each step are kept in TestResults/screenshots.
/// </summary>
public sealed partial class AdminUiBrowserTests : IClassFixture<AdminUiHost>
{
    private readonly AdminUiHost _host;

    public AdminUiBrowserTests(AdminUiHost host)
    {
        _host = host;
        SetDefaultExpectTimeout(15_000);
    }

    private static Task ScreenshotAsync(IPage page, string name) => AdminUiHost.ScreenshotAsync(page, name);

    private Task<IPage> LogInAsync(string user, string path = "admin") => _host.LogInAsync(user, path);

    /// <summary>Reloads a search until it lists <paramref name="count"/> messages (mail reaches a state asynchronously).</summary>
    private static Task WaitForRowsAsync(IPage page, string url, int count)
    {
        var rows = page.Locator("[data-testid=messages] tbody tr");
        return AdminUiHost.ReloadUntilAsync(page, url, async () => await rows.CountAsync() == count, $"{count} message(s)");
    }

    [Fact]
    public async Task A_wrong_password_is_refused_and_the_right_one_leads_back_to_the_page_asked_for()
    {
        var page = await _host.NewPageAsync();
        await page.GotoAsync("admin/suppressions");
        await Expect(page).ToHaveURLAsync(new Regex("/admin/login\\?returnUrl=%2Fadmin%2Fsuppressions$"));

        await page.GetByLabel("Name", new() { Exact = true }).FillAsync(AdminUiHost.Operator);
        await page.GetByLabel("Password", new() { Exact = true }).FillAsync("not the password");
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("Wrong name or password.");
        await ScreenshotAsync(page, "login-refused");
        var cookies = await page.Context.CookiesAsync();
        Assert.DoesNotContain(cookies, c => c.Name == AdminUiExtensions.CookieName);

        await page.GetByLabel("Name", new() { Exact = true }).FillAsync(AdminUiHost.Operator);
        await page.GetByLabel("Password", new() { Exact = true }).FillAsync(AdminUiHost.Password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Suppressions", Level = 1 })).ToBeVisibleAsync();
        var session = Assert.Single(await page.Context.CookiesAsync(), c => c.Name == AdminUiExtensions.CookieName);
        Assert.True(session.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, session.SameSite);

        await page.GetByRole(AriaRole.Link, new() { Name = "Dashboard" }).ClickAsync();
        await Expect(page.GetByTestId("queue-total")).ToBeVisibleAsync();
        await ScreenshotAsync(page, "dashboard");

        await page.GetByRole(AriaRole.Button, new() { Name = "Log out" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("/admin/login$"));
        await page.GotoAsync("admin");
        await Expect(page).ToHaveURLAsync(new Regex("/admin/login"));
    }

    [Fact]
    public async Task Search_finds_a_message_by_recipient_and_state_and_shows_its_timeline()
    {
        var id = await _host.SendAsync("search@dest.test", "find me");
        var page = await LogInAsync(AdminUiHost.Operator);
        await page.GetByRole(AriaRole.Link, new() { Name = "Messages" }).ClickAsync();
        await page.GetByLabel("Recipient", new() { Exact = true }).FillAsync("search@dest.test");
        await page.GetByLabel("State").SelectOptionAsync("deferred");
        await page.GetByRole(AriaRole.Button, new() { Name = "Search" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("recipient=search%40dest.test.*state=deferred|state=deferred.*recipient=search%40dest.test"));
        await WaitForRowsAsync(page, page.Url, 1);
        await ScreenshotAsync(page, "search");

        await page.Locator("[data-testid=messages] tbody tr a").First.ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToContainTextAsync(id.ToString());
        var timeline = page.GetByTestId("timeline");
        await Expect(timeline).ToContainTextAsync("received");
        await Expect(timeline).ToContainTextAsync("451 4.3.0 not now");
        await Expect(page.Locator("article.recipient")).ToContainTextAsync("mx.dest.test");

        // The attempt's session, as Delivery recorded it: the sink offers no STARTTLS.
        await Expect(page.GetByTestId("attempt-tls").First).ToContainTextAsync("clear text");
        await ScreenshotAsync(page, "message");
    }

    [Fact]
    public async Task Bulk_hold_and_release_act_on_every_message_matching_the_filter_after_a_confirmation()
    {
        await _host.SendAsync("bulk@dest.test", "bulk one");
        await _host.SendAsync("bulk@dest.test", "bulk two");
        var page = await LogInAsync(AdminUiHost.Operator);
        await WaitForRowsAsync(page, "admin/messages?recipient=bulk%40dest.test&state=deferred", 2);

        await page.GetByLabel("Action").SelectOptionAsync("hold");
        await page.GetByRole(AriaRole.Button, new() { Name = "Review…" }).ClickAsync();
        await Expect(page.GetByTestId("bulk-review")).ToContainTextAsync("hold every message matching recipient = bulk@dest.test, state = deferred");
        await ScreenshotAsync(page, "bulk-hold-review");
        await page.GetByRole(AriaRole.Button, new() { Name = "Confirm hold" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("hold: 2 recipient(s) changed");
        await WaitForRowsAsync(page, "admin/messages?recipient=bulk%40dest.test&state=held", 2);
        await ScreenshotAsync(page, "bulk-held");

        await page.GetByLabel("Action").SelectOptionAsync("release");
        await page.GetByRole(AriaRole.Button, new() { Name = "Review…" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Confirm release" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("release: 2 recipient(s) changed");
        await Expect(page.GetByText("No message matches.")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task A_suppression_is_added_and_removed()
    {
        var page = await LogInAsync(AdminUiHost.Operator);
        await page.GetByRole(AriaRole.Link, new() { Name = "Suppressions" }).ClickAsync();
        await page.GetByLabel("Address", new() { Exact = true }).FillAsync("blocked@dest.test");
        await page.GetByLabel("Reason").FillAsync("asked to stop");
        await page.GetByRole(AriaRole.Button, new() { Name = "Suppress" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync("blocked@dest.test is suppressed.");
        var row = page.GetByRole(AriaRole.Row).Filter(new() { HasText = "blocked@dest.test" });
        await Expect(row).ToContainTextAsync("asked to stop");
        await ScreenshotAsync(page, "suppression-added");

        await page.GetByRole(AriaRole.Button, new() { Name = "Remove blocked@dest.test" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync("blocked@dest.test is no longer suppressed.");
        await Expect(row).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task A_viewer_sees_but_is_offered_no_action_and_no_admin_page()
    {
        await _host.SendAsync("viewer@dest.test", "look only");
        var page = await LogInAsync(AdminUiHost.Viewer);
        await WaitForRowsAsync(page, "admin/messages?recipient=viewer%40dest.test", 1);
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Review…" })).ToHaveCountAsync(0);

        await page.GotoAsync("admin/suppressions");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Suppress" })).ToHaveCountAsync(0);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Keys and users" })).ToHaveCountAsync(0);

        await page.GotoAsync("admin/access");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Not allowed" })).ToBeVisibleAsync();

        // A hand-made post of the operator's form, with the viewer's own valid antiforgery token, changes nothing.
        await page.GotoAsync("admin/suppressions");
        var token = await page.Locator("input[name=__RequestVerificationToken]").First.GetAttributeAsync("value");
        var response = await page.APIRequest.PostAsync("admin/suppressions", new()
        {
            Form = page.APIRequest.CreateFormData()
                .Set("_handler", "suppress").Set("__RequestVerificationToken", token!).Set("AddAddress", "forged@dest.test"),
        });
        Assert.False(response.Ok && !(await response.TextAsync()).Contains("does not allow", StringComparison.Ordinal), "a viewer's post was accepted");
        await page.ReloadAsync();
        await Expect(page.GetByText("forged@dest.test")).ToHaveCountAsync(0);
    }
}
