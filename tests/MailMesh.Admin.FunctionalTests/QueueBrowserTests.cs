using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>The queue by destination in the browser: a whole destination held and released after a confirmation.</summary>
public sealed partial class AdminUiBrowserTests
{
    [Fact]
    public async Task A_destination_is_held_and_released_from_the_queue_page_after_a_confirmation()
    {
        // A destination of its own (the other tests' mail goes to dest.test), deferring everything.
        _host.Dns.AddMx("slow.test", 10, "mx.dest.test");
        foreach (var local in new[] { "one", "two" })
        {
            _host.Sink.RecipientReplies[$"{local}@slow.test"] = "451 4.3.0 not now";
            await _host.SendAsync($"{local}@slow.test", "queue " + local);
        }

        var page = await LogInAsync(AdminUiHost.Operator);
        await page.GetByRole(AriaRole.Link, new() { Name = "Queue", Exact = true }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Queue by destination", Level = 1 })).ToBeVisibleAsync();
        var row = page.GetByRole(AriaRole.Row).Filter(new() { Has = page.GetByRole(AriaRole.Rowheader, new() { Name = "slow.test", Exact = true }) });
        await AdminUiHost.ReloadUntilAsync(page, "admin/queue", async () => (await row.CountAsync()) == 1 && (await row.InnerTextAsync()).Contains("deferred 2", StringComparison.Ordinal), "slow.test with 2 deferred");
        await ScreenshotAsync(page, "queue");

        await page.GetByRole(AriaRole.Link, new() { Name = "Act on slow.test" }).ClickAsync();
        await Expect(page.GetByLabel("Destination", new() { Exact = true })).ToHaveValueAsync("slow.test");
        await page.GetByLabel("State", new() { Exact = true }).SelectOptionAsync("deferred");
        await page.GetByLabel("Action", new() { Exact = true }).SelectOptionAsync("hold");
        await page.GetByRole(AriaRole.Button, new() { Name = "Review…" }).ClickAsync();
        await Expect(page.GetByTestId("queue-review")).ToContainTextAsync("hold every message with a recipient at slow.test in state deferred? (2 recipient(s) now.)");
        await ScreenshotAsync(page, "queue-review");
        await page.GetByRole(AriaRole.Button, new() { Name = "Confirm hold" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("hold: 2 recipient(s) changed");
        await Expect(row).ToContainTextAsync("held 2");

        await page.GetByLabel("Destination", new() { Exact = true }).SelectOptionAsync("slow.test");
        await page.GetByLabel("State", new() { Exact = true }).SelectOptionAsync("held");
        await page.GetByLabel("Action", new() { Exact = true }).SelectOptionAsync("release");
        await page.GetByRole(AriaRole.Button, new() { Name = "Review…" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Confirm release" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("release: 2 recipient(s) changed");
        await Expect(row).Not.ToContainTextAsync("held");

        // The dashboard charts this traffic from the spool's history: the messages just accepted are in the last hour.
        await page.GetByRole(AriaRole.Link, new() { Name = "Dashboard" }).ClickAsync();
        await Expect(page.GetByTestId("chart-accepted").Locator("svg")).ToHaveAttributeAsync("aria-label", new System.Text.RegularExpressions.Regex("^Accepted per minute: [1-9]"));
        await ScreenshotAsync(page, "dashboard-traffic");
    }
}
