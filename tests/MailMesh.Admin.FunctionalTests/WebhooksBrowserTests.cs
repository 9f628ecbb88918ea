using MailMesh.Testing.Https;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>
/// The Webhooks page in a real browser against a running standalone and a real HTTP receiver: an admin adds an
/// endpoint (its secret shown once), sends it a test event, reads its history, disables it, edits it (a new secret
/// shown once) and deletes it after the confirmation.
/// </summary>
public sealed class WebhooksBrowserTests : IClassFixture<AdminUiHost>, IAsyncLifetime
{
    private readonly AdminUiHost _host;
    private WebhookReceiver _receiver = null!;

    public WebhooksBrowserTests(AdminUiHost host)
    {
        _host = host;
        SetDefaultExpectTimeout(15_000);
    }

    public async Task InitializeAsync() => _receiver = await WebhookReceiver.StartAsync();

    public async Task DisposeAsync() => await _receiver.DisposeAsync();

    [Fact]
    public async Task An_admin_adds_an_endpoint_tests_it_reads_its_history_disables_edits_and_deletes_it()
    {
        var url = _receiver.Url("/ui-hook").ToString();
        var page = await _host.NewPageAsync();
        await page.GotoAsync("admin");
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync(AdminUiHost.Admin);
        await page.GetByLabel("Password", new() { Exact = true }).FillAsync(AdminUiHost.Password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Webhooks" }).ClickAsync();

        await page.GetByLabel("URL", new() { Exact = true }).FillAsync(url);
        await page.GetByLabel("Events", new() { Exact = true }).FillAsync("Bounced, Delivered");
        await page.GetByRole(AriaRole.Button, new() { Name = "Add", Exact = true }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync($"Added {url}.");
        await Expect(page.GetByTestId("new-secret").Locator("code")).ToContainTextAsync("whsec_");
        var row = page.GetByRole(AriaRole.Row).Filter(new() { HasText = url });
        await Expect(row).ToContainTextAsync("Delivered, Bounced");

        await page.GetByRole(AriaRole.Button, new() { Name = $"Send a test event to {url}" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("was accepted (answered 200");
        var request = await _receiver.NextAsync();
        Assert.Equal("Test", request.Headers["X-MailMesh-Event"]);
        await Expect(page.GetByTestId("webhook-history").Locator("tbody tr")).ToHaveCountAsync(1);
        await Expect(page.GetByTestId("webhook-history")).ToContainTextAsync("Test");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(AdminUiHost.Screenshots, "webhooks.png"), FullPage = true });

        await page.GetByRole(AriaRole.Button, new() { Name = $"Disable {url}" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("disabled");
        await Expect(row).ToContainTextAsync("disabled");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = $"Enable {url}" })).ToBeVisibleAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = $"History of {url}" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = $"History of {url}" })).ToBeVisibleAsync();

        // Edit: the form is filled with what the endpoint has; a new secret is shown once.
        await page.GetByRole(AriaRole.Link, new() { Name = $"Edit {url}" }).ClickAsync();
        var edit = page.GetByTestId("webhook-edit");
        await Expect(edit.GetByLabel("URL", new() { Exact = true })).ToHaveValueAsync(url);
        await edit.GetByLabel("Events", new() { Exact = true }).FillAsync("Expired");
        await edit.GetByLabel("Make a new signing secret", new() { Exact = false }).CheckAsync();
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(AdminUiHost.Screenshots, "webhook-edit.png"), FullPage = true });
        await edit.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync($"Saved {url}, with a new signing secret.");
        await Expect(page.GetByTestId("new-secret").Locator("code")).ToContainTextAsync("whsec_");
        await Expect(row).ToContainTextAsync("Expired");

        // Delete: asked first, then gone.
        await page.GetByRole(AriaRole.Link, new() { Name = $"Delete {url}" }).ClickAsync();
        await Expect(page.GetByTestId("webhook-delete-review")).ToContainTextAsync("cannot be undone");
        await page.GetByRole(AriaRole.Button, new() { Name = "Confirm delete" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync($"Deleted {url}.");
        await Expect(row).ToHaveCountAsync(0);
    }
}
