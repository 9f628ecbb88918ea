using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>Site suspensions, DKIM keys and SMTP users in the browser, against the standalone's own admin API.</summary>
public sealed partial class AdminUiBrowserTests
{
    [Fact]
    public async Task A_site_is_suspended_and_the_suspension_lifted()
    {
        var page = await LogInAsync(AdminUiHost.Operator);
        await page.GetByRole(AriaRole.Link, new() { Name = "Site suspensions" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Site suspensions", Level = 1 })).ToBeVisibleAsync();

        await page.GetByLabel("Site", new() { Exact = true }).FillAsync("mx1.hoster.test,mx2.hoster.test");
        await page.GetByLabel("Source IP (optional)").FillAsync("192.0.2.10");
        await page.GetByLabel("Reason").FillAsync("421 from the hoster: too many connections");
        await page.GetByRole(AriaRole.Button, new() { Name = "Suspend" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("mx1.hoster.test,mx2.hoster.test is suspended until");
        var row = page.GetByTestId("suspensions").GetByRole(AriaRole.Row).Filter(new() { HasText = "mx1.hoster.test,mx2.hoster.test" });
        await Expect(row).ToContainTextAsync("192.0.2.10");
        await Expect(row).ToContainTextAsync("admin:");
        await AdminUiHost.ScreenshotAsync(page, "suspensions");

        await page.GetByRole(AriaRole.Button, new() { Name = "Lift suspend of mx1.hoster.test,mx2.hoster.test from 192.0.2.10" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync("The suspension of mx1.hoster.test,mx2.hoster.test is lifted.");
        await Expect(row).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task The_DKIM_page_shows_the_record_to_publish_for_each_key()
    {
        var page = await LogInAsync(AdminUiHost.Viewer);
        await page.GetByRole(AriaRole.Link, new() { Name = "DKIM keys" }).ClickAsync();
        await Expect(page.GetByTestId("dkim-keys")).ToContainTextAsync("origin.test");
        await Expect(page.GetByLabel("Name (TXT)")).ToHaveValueAsync("s2026._domainkey.origin.test");
        var value = page.GetByLabel("Value", new() { Exact = true });
        await Expect(value).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$"));
        Assert.True(await value.IsEditableAsync() is false, "the record is read-only");
        await Expect(page.Locator("body")).Not.ToContainTextAsync("PRIVATE KEY");
        await AdminUiHost.ScreenshotAsync(page, "dkim");
    }

    [Fact]
    public async Task An_admin_makes_an_smtp_user_and_resets_its_password_each_generated_one_shown_once()
    {
        var page = await LogInAsync(AdminUiHost.Admin);
        await page.GetByRole(AriaRole.Link, new() { Name = "Keys and users" }).ClickAsync();

        var create = page.GetByTestId("smtp-user-create");
        await create.GetByLabel("Name", new() { Exact = true }).FillAsync("browser-app");
        await create.GetByRole(AriaRole.Button, new() { Name = "Make" }).ClickAsync();
        var generated = page.GetByTestId("generated-password").Locator("code");
        await Expect(generated).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(".{16,}"));
        var first = await generated.TextContentAsync();

        var reset = page.GetByTestId("smtp-user-password");
        await reset.GetByLabel("User", new() { Exact = true }).SelectOptionAsync("browser-app");
        await reset.GetByRole(AriaRole.Button, new() { Name = "Reset password" }).ClickAsync();
        await Expect(page.GetByText("The password of SMTP user browser-app was reset.")).ToBeVisibleAsync();
        await Expect(generated).Not.ToHaveTextAsync(first!);
        await ScreenshotAsync(page, "smtp-user-password-reset");

        // Shown once: the page read again has no password on it.
        await page.GotoAsync("admin/access");
        await Expect(page.GetByTestId("generated-password")).ToHaveCountAsync(0);
    }
}
