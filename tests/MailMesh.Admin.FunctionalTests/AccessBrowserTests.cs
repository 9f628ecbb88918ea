using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>SMTP users on the Keys and users page in the browser, against the standalone's own Ingress.</summary>
public sealed partial class AdminUiBrowserTests
{
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
