using Bunit;
using MailMesh.Admin.Api;
using MailMesh.Admin.Components.Pages;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Admin.Tests;

/// <summary>The Webhooks page against a fake admin API: the endpoints with their actions, and one endpoint's history.</summary>
public sealed class WebhooksPageTests : BunitContext
{
    private static readonly DateTimeOffset At = DateTimeOffset.Parse("2030-01-02T03:04:05Z");
    private readonly FakeAdminApi _api = new();
    private readonly Bunit.TestDoubles.BunitAuthorizationContext _auth;

    public WebhooksPageTests()
    {
        Services.AddSingleton<IAdminApi>(_api);
        _auth = AddAuthorization();
        _auth.SetAuthorized("ada").SetRoles([.. AdminRoles.Granted(AdminRoles.Admin)]);
    }

    private IRenderedComponent<Webhooks> RenderAt(string url)
    {
        Services.GetRequiredService<NavigationManager>().NavigateTo(url);
        return Render<Webhooks>();
    }

    [Fact]
    public void Endpoints_are_listed_with_disable_enable_test_and_history_only_for_the_stored_ones()
    {
        var stored = Guid.NewGuid();
        var off = Guid.NewGuid();
        _api.Webhooks.Add(new WebhookItem(null, "https://configured.example/hook", [], true, true, "configuration", null, null));
        _api.Webhooks.Add(new WebhookItem(stored, "https://hooks.example/mail", ["Bounced", "Expired"], true, true, "api", At, "ui-key"));
        _api.Webhooks.Add(new WebhookItem(off, "http://quiet.example/", [], false, false, "api", At, "ui-key"));

        var page = RenderAt("admin/webhooks");

        var rows = page.FindAll("[data-testid=webhooks] tbody tr");
        Assert.Equal(3, rows.Count);
        Assert.Empty(rows[0].QuerySelectorAll("form"));
        Assert.Contains("Bounced, Expired", rows[1].TextContent, StringComparison.Ordinal);
        Assert.Equal("Disable https://hooks.example/mail", rows[1].QuerySelector("button[aria-label^=Disable]")!.GetAttribute("aria-label"));
        Assert.Equal("false", rows[1].QuerySelector("input[name=ToggleEnable]")!.GetAttribute("value"));
        Assert.Equal(stored.ToString(), rows[1].QuerySelector("input[name=TestId]")!.GetAttribute("value"));
        Assert.Equal($"admin/webhooks?history={stored}", rows[1].QuerySelector("a")!.GetAttribute("href"));
        Assert.NotNull(rows[2].QuerySelector("button[aria-label='Enable http://quiet.example/']"));
        Assert.NotNull(page.Find("#w-url"));
        PageTests.AssertEveryFieldIsLabelled(page);
    }

    [Fact]
    public void The_history_of_an_endpoint_shows_each_post_with_its_answer()
    {
        var id = Guid.NewGuid();
        var message = Guid.NewGuid();
        _api.Webhooks.Add(new WebhookItem(id, "https://hooks.example/mail", [], true, true, "api", At, "ui-key"));
        _api.WebhookHistory[id] =
        [
            new WebhookDeliveryItem(2, "evt-2", "Test", null, At.AddMinutes(1), null, "Webhook https://hooks.example/mail did not answer within 00:00:10", 10000, false),
            new WebhookDeliveryItem(1, "evt-1", "Delivered", message, At, 200, null, 35, true),
        ];

        var page = RenderAt($"admin/webhooks?history={id}");

        Assert.Equal("History of https://hooks.example/mail", page.Find("#history-heading").TextContent);
        var rows = page.FindAll("[data-testid=webhook-history] tbody tr");
        Assert.Equal(2, rows.Count);
        Assert.Contains("no answer · Webhook https://hooks.example/mail did not answer", rows[0].TextContent, StringComparison.Ordinal);
        Assert.Contains("failed", rows[0].GetAttribute("class"), StringComparison.Ordinal);
        Assert.Equal($"admin/messages/{message}", rows[1].QuerySelector("a")!.GetAttribute("href"));
        Assert.Contains("200", rows[1].TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public void An_api_failure_is_an_alert()
    {
        _api.Failure = new AdminApiException(403, "Forbidden: the key lacks webhooks:read");

        var page = RenderAt("admin/webhooks");

        Assert.Contains("webhooks:read", page.Find("[role=alert]").TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_endpoint_is_edited_with_its_current_values_filled_in_and_a_rotated_secret_shown_once()
    {
        var id = Guid.NewGuid();
        _api.Webhooks.Add(new WebhookItem(id, "https://hooks.example/mail", ["Bounced", "Expired"], true, true, "api", At, "ui-key"));

        var list = RenderAt("admin/webhooks");
        Assert.Equal($"admin/webhooks?edit={id}", list.Find("a[aria-label='Edit https://hooks.example/mail']").GetAttribute("href"));
        Assert.Empty(list.FindAll("[data-testid=webhook-edit]"));

        var page = RenderAt($"admin/webhooks?edit={id}");
        Assert.Equal("Edit https://hooks.example/mail", page.Find("#edit-heading").TextContent);
        Assert.Equal("https://hooks.example/mail", page.Find("#e-url").GetAttribute("value"));
        Assert.Equal("Bounced, Expired", page.Find("#e-events").GetAttribute("value"));
        Assert.Null(page.Find("#e-rotate").GetAttribute("checked"));
        PageTests.AssertEveryFieldIsLabelled(page);

        await page.InvokeAsync(() =>
        {
            page.Instance.EditId = id;
            page.Instance.EditUrl = "https://hooks.example/v2";
            page.Instance.EditEvents = "all";
            page.Instance.EditRotate = true;
        });
        await page.Find("[data-testid=webhook-edit] form").SubmitAsync();

        var (updated, url, events, rotate) = Assert.Single(_api.WebhookUpdates);
        Assert.Equal((id, "https://hooks.example/v2", true), (updated, url, rotate));
        Assert.Empty(events);
        Assert.Equal("Saved https://hooks.example/v2, with a new signing secret.", page.Find("[role=status].alert").TextContent);
        Assert.Contains("whsec_rotated-by-the-fake", page.Find("[data-testid=new-secret]").TextContent, StringComparison.Ordinal);
        Assert.Empty(page.FindAll("[data-testid=webhook-edit]"));
        Assert.Contains("https://hooks.example/v2", page.Find("[data-testid=webhooks]").TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_endpoint_is_deleted_only_after_its_confirmation()
    {
        var id = Guid.NewGuid();
        _api.Webhooks.Add(new WebhookItem(null, "https://configured.example/hook", [], true, true, "configuration", null, null));
        _api.Webhooks.Add(new WebhookItem(id, "https://hooks.example/mail", [], true, true, "api", At, "ui-key"));

        var list = RenderAt("admin/webhooks");
        Assert.Equal($"admin/webhooks?delete={id}", list.Find("a[aria-label='Delete https://hooks.example/mail']").GetAttribute("href"));
        Assert.Empty(list.FindAll("a[aria-label='Delete https://configured.example/hook']"));

        // Following the link asks; nothing is deleted yet.
        var page = RenderAt($"admin/webhooks?delete={id}");
        var review = page.Find("[data-testid=webhook-delete-review]");
        Assert.Contains("Delete https://hooks.example/mail?", review.TextContent, StringComparison.Ordinal);
        Assert.Contains("cannot be undone", review.TextContent, StringComparison.Ordinal);
        Assert.Equal(2, _api.Webhooks.Count);

        await page.InvokeAsync(() => page.Instance.DeleteId = id);
        await review.QuerySelector("form")!.SubmitAsync();

        Assert.DoesNotContain(_api.Webhooks, w => w.Id == id);
        Assert.Equal("Deleted https://hooks.example/mail.", page.Find("[role=status].alert").TextContent);
        Assert.Empty(page.FindAll("[data-testid=webhook-delete-review]"));
        Assert.Single(page.FindAll("[data-testid=webhooks] tbody tr"));
    }

    [Fact]
    public async Task A_posted_change_from_an_account_that_is_not_admin_is_refused()
    {
        // The page asks for the admin role; a hand-made post from a lesser account is refused by the handler too.
        var id = Guid.NewGuid();
        _api.Webhooks.Add(new WebhookItem(id, "https://hooks.example/mail", [], true, true, "api", At, "ui-key"));
        _auth.SetAuthorized("olivia").SetRoles([.. AdminRoles.Granted(AdminRoles.Operator)]);

        var page = RenderAt($"admin/webhooks?delete={id}");
        await page.InvokeAsync(() => page.Instance.DeleteId = id);
        await page.Find("[data-testid=webhook-delete-review] form").SubmitAsync();

        Assert.Single(_api.Webhooks);
        Assert.Equal("Your role does not allow this.", page.Find("[role=alert]").TextContent.Trim());
    }
}
