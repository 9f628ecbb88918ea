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

    public WebhooksPageTests()
    {
        Services.AddSingleton<IAdminApi>(_api);
        AddAuthorization().SetAuthorized("ada").SetRoles([.. AdminRoles.Granted(AdminRoles.Admin)]);
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
}
