using AngleSharp.Dom;
using Bunit;
using MailMesh.Admin.Api;
using MailMesh.Admin.Components.Pages;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Admin.Tests;

/// <summary>
/// The pages rendered against a fake admin API: what each role is offered (a viewer never sees an action), that the
/// data shows, that an API failure is an alert and not an exception, and that every field has a label.
/// </summary>
public sealed partial class PageTests : BunitContext
{
    private readonly FakeAdminApi _api = new();

    public PageTests() => Services.AddSingleton<IAdminApi>(_api);

    private void LogIn(string role) =>
        AddAuthorization().SetAuthorized("alice").SetRoles([.. AdminRoles.Granted(role)]);

    private IRenderedComponent<T> RenderAt<T>(string url)
        where T : IComponent
    {
        Services.GetRequiredService<NavigationManager>().NavigateTo(url);
        return Render<T>();
    }

    private static MessageItem Message(string state) => new(
        Guid.Parse("11111111-2222-3333-4444-555555555555"), "app@origin.test", DateTimeOffset.Parse("2030-01-02T03:04:05Z"), 2048, "smtp",
        null, 2, "user@dest.test", new Dictionary<string, int> { [state] = 2 }, DateTimeOffset.Parse("2030-01-02T03:10:00Z"));

    /// <summary>Every visible input and select is named by a label (WCAG 2.2 §1.3.1, §4.1.2).</summary>
    internal static void AssertEveryFieldIsLabelled<T>(IRenderedComponent<T> page)
        where T : IComponent
    {
        foreach (var field in page.FindAll("input, select").Where(f => f.GetAttribute("type") != "hidden"))
        {
            var id = field.GetAttribute("id");
            Assert.False(string.IsNullOrEmpty(id), $"a field without an id: {field.OuterHtml}");
            Assert.NotNull(page.Find($"label[for='{id}']"));
        }
    }

    [Fact]
    public void The_dashboard_shows_the_queue_by_state_and_destination()
    {
        LogIn(AdminRoles.Viewer);
        _api.Summary = _api.Summary with
        {
            Total = new QueueRow("*", 3, [1, 2, 0], new Dictionary<string, long> { ["deferred"] = 2, ["held"] = 1 }, DateTimeOffset.Parse("2030-01-02T02:04:05Z"), 3700),
            Domains = [new QueueRow("dest.test", 3, [1, 2, 0], new Dictionary<string, long> { ["deferred"] = 2, ["held"] = 1 }, null, 3700)],
            DomainCount = 1,
        };

        var page = Render<Dashboard>();

        Assert.Equal("3", page.Find("[data-testid=queue-total]").TextContent);
        Assert.Contains("1 h 1 min", page.Markup, StringComparison.Ordinal);
        var link = page.Find("a[href='admin/messages?domain=dest.test']");
        Assert.Equal("dest.test", link.TextContent);
        Assert.Contains("deferred 2", page.Find("tbody .states").TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public void An_api_failure_is_an_alert_not_an_error_page()
    {
        LogIn(AdminRoles.Viewer);
        _api.Failure = new AdminApiException(0, "The Queue service at http://queue:8080/ cannot be reached: refused");

        var page = Render<Dashboard>();

        Assert.Contains("cannot be reached", page.Find("[role=alert]").TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public void A_viewer_searches_but_is_offered_no_bulk_action()
    {
        LogIn(AdminRoles.Viewer);
        _api.Messages.Add(Message("deferred"));

        var page = RenderAt<Messages>("admin/messages?state=deferred&domain=dest.test");

        Assert.Equal("deferred", Assert.Single(_api.Searches).State);
        Assert.Equal("dest.test", _api.Searches[0].Domain);
        Assert.Single(page.FindAll("[data-testid=messages] tbody tr"));
        Assert.Contains("user@dest.test +1", page.Markup, StringComparison.Ordinal);
        Assert.Empty(page.FindAll("form[method=post]"));
        Assert.NotNull(page.Find("a[rel=next]"));
    }

    [Fact]
    public void An_operator_is_offered_bulk_actions_only_on_a_filter()
    {
        LogIn(AdminRoles.Operator);
        var filtered = RenderAt<Messages>("admin/messages?state=deferred");
        var actions = filtered.FindAll("#bulk-action option").Select(o => o.GetAttribute("value")).ToList();
        Assert.Equal(["hold", "release", "retry", "bounce", "delete"], actions);
        AssertEveryFieldIsLabelled(filtered);

        // No filter: acting on the whole spool is never offered.
        var unfiltered = RenderAt<Messages>("admin/messages");
        Assert.Empty(unfiltered.FindAll("#bulk-action"));
    }

    [Fact]
    public void The_selected_state_stays_selected_after_a_search()
    {
        LogIn(AdminRoles.Viewer);
        var page = RenderAt<Messages>("admin/messages?state=held&sender=app%40origin.test");
        Assert.Equal("held", page.Find("#f-state option[selected]").GetAttribute("value"));
        Assert.Equal("app@origin.test", page.Find("#f-sender").GetAttribute("value"));
    }

    [Fact]
    public void A_message_shows_its_attempts_and_timeline_and_the_viewer_no_actions()
    {
        LogIn(AdminRoles.Viewer);
        var id = Guid.NewGuid();
        var at = DateTimeOffset.Parse("2030-01-02T03:04:05Z");
        _api.Details[id] = new MessageDetail(
            id, "app@origin.test", at, 100, "smtp", null, "127.0.0.1", "client.test", null, "SevenBit", false, false, null, "0af7651916cd43dd8448eb211c80319c",
            [new HeaderItem("Subject", "hello")],
            [new RecipientItem("user@dest.test", "dest.test", "deferred", 1, at.AddMinutes(5), 451, "4.3.0", "not now", "mx.dest.test",
                [new AttemptItem(at.AddSeconds(2), "deferred", 451, "4.3.0", "not now", "mx.dest.test", "transient")], "transient")],
            [new TimelineItem(at, "received", null, "from 127.0.0.1 (smtp)"), new TimelineItem(at.AddSeconds(2), "deferred", "user@dest.test", "451 4.3.0 not now (mx.dest.test)")]);

        var page = Render<MessageDetailPage>(p => p.Add(x => x.Id, id));

        Assert.Equal(2, page.FindAll("[data-testid=timeline] li").Count);
        Assert.Contains("mx.dest.test", page.Find("article.recipient table").TextContent, StringComparison.Ordinal);
        Assert.Contains("0af7651916cd43dd8448eb211c80319c", page.Markup, StringComparison.Ordinal);
        Assert.Empty(page.FindAll("form[method=post]"));
    }

    [Fact]
    public void An_unknown_message_says_so()
    {
        LogIn(AdminRoles.Operator);
        var page = Render<MessageDetailPage>(p => p.Add(x => x.Id, Guid.Empty));
        Assert.Contains("No message", page.Markup, StringComparison.Ordinal);
        Assert.Empty(page.FindAll("button"));
    }

    [Fact]
    public void An_operator_may_add_and_remove_suppressions_a_viewer_may_not()
    {
        _api.Suppressions.Add(new SuppressionItem("gone@dest.test", "bounced", DateTimeOffset.Parse("2030-01-02T03:04:05Z"), "bounce", null));
        LogIn(AdminRoles.Operator);
        var page = Render<Suppressions>();
        Assert.NotNull(page.Find("#s-address"));
        Assert.Equal("gone@dest.test", page.Find("input[name=RemoveAddress]").GetAttribute("value"));
        Assert.Equal("Remove gone@dest.test", page.Find("button[aria-label^=Remove]").GetAttribute("aria-label"));
        AssertEveryFieldIsLabelled(page);
    }

    [Fact]
    public void A_viewer_sees_suppressions_without_forms()
    {
        _api.Suppressions.Add(new SuppressionItem("gone@dest.test", "bounced", DateTimeOffset.Parse("2030-01-02T03:04:05Z"), "bounce", null));
        LogIn(AdminRoles.Viewer);
        var page = Render<Suppressions>();
        Assert.Equal("gone@dest.test", page.Find("[data-testid=suppressions] tbody th").TextContent);
        Assert.Empty(page.FindAll("form[method=post]"));
    }

    [Fact]
    public async Task An_admin_makes_an_smtp_user_sees_its_generated_password_once_and_disables_it()
    {
        Services.AddSingleton<Microsoft.Extensions.Options.IOptionsMonitor<AdminAccountsOptions>>(new Monitor<AdminAccountsOptions>(new AdminAccountsOptions()));
        _api.SmtpUsers.Add(new SmtpUserItem("configured-user", null, "configuration"));
        LogIn(AdminRoles.Admin);
        var page = Render<Access>();
        AssertEveryFieldIsLabelled(page);

        // Only users made through the API can be disabled here.
        Assert.Empty(page.FindAll("[data-testid=smtp-users] button"));

        await page.InvokeAsync(() =>
        {
            page.Instance.NewName = "app1";
            page.Instance.NewDomains = "shop.test";
        });
        await page.Find("form[data-testid=smtp-user-create]").SubmitAsync();

        Assert.Equal(("app1", null, "shop.test"), Assert.Single(_api.SmtpUsersCreated));
        Assert.Contains("generated-pw-123", page.Find("[data-testid=generated-password]").TextContent, StringComparison.Ordinal);
        Assert.Contains("SMTP user app1 made.", page.Find("[role=status].alert").TextContent, StringComparison.Ordinal);
        var disable = page.Find("button[aria-label='Disable app1']");
        Assert.Equal("app1", page.Find("input[name=StateName]").GetAttribute("value"));

        await page.InvokeAsync(() =>
        {
            page.Instance.StateName = "app1";
            page.Instance.StateEnable = "false";
        });
        await disable.Closest("form")!.SubmitAsync();

        Assert.False(Assert.Single(_api.SmtpUsers, u => u.Name == "app1").Enabled);
        Assert.Contains("disabled by alice (via admin-ui)", page.Find("[data-testid=smtp-users]").TextContent, StringComparison.Ordinal);
        Assert.NotNull(page.Find("button[aria-label='Enable app1']"));
    }

    [Fact]
    public async Task An_admin_resets_an_smtp_users_password_and_sees_a_generated_one_once()
    {
        Services.AddSingleton<Microsoft.Extensions.Options.IOptionsMonitor<AdminAccountsOptions>>(new Monitor<AdminAccountsOptions>(new AdminAccountsOptions()));
        _api.SmtpUsers.Add(new SmtpUserItem("configured-user", null, "configuration"));
        _api.SmtpUsers.Add(new SmtpUserItem("app1", "shop.test", "api", CreatedBy: "alice (via admin-ui)"));
        LogIn(AdminRoles.Admin);
        var page = Render<Access>();
        AssertEveryFieldIsLabelled(page);

        // Only users made through the API are offered: configured ones change in configuration.
        Assert.Equal(["app1"], page.FindAll("#r-name option").Select(o => o.GetAttribute("value")));
        Assert.Empty(page.FindAll("[data-testid=generated-password]"));

        await page.InvokeAsync(() => page.Instance.ResetName = "app1");
        await page.Find("form[data-testid=smtp-user-password]").SubmitAsync();

        Assert.Equal(("app1", null), Assert.Single(_api.PasswordResets));
        Assert.Contains("reset-pw-456", page.Find("[data-testid=generated-password]").TextContent, StringComparison.Ordinal);
        Assert.Contains("The password of SMTP user app1 was reset.", page.Find("[role=status].alert").TextContent, StringComparison.Ordinal);

        // A given password is not shown back.
        await page.InvokeAsync(() =>
        {
            page.Instance.ResetName = "app1";
            page.Instance.ResetPassword = "a given passphrase";
        });
        await page.Find("form[data-testid=smtp-user-password]").SubmitAsync();
        Assert.Equal(("app1", "a given passphrase"), _api.PasswordResets[^1]);
        Assert.Empty(page.FindAll("[data-testid=generated-password]"));
    }

    [Fact]
    public async Task An_admin_makes_an_api_key_sees_its_secret_once_and_disables_it()
    {
        Services.AddSingleton<Microsoft.Extensions.Options.IOptionsMonitor<AdminAccountsOptions>>(new Monitor<AdminAccountsOptions>(new AdminAccountsOptions()));
        _api.Keys.Add(new KeyItem("operator", ["messages:read"], "configuration"));
        LogIn(AdminRoles.Admin);
        var page = Render<Access>();
        AssertEveryFieldIsLabelled(page);
        Assert.Empty(page.FindAll("[data-testid=keys] button"));

        await page.InvokeAsync(() =>
        {
            page.Instance.NewKeyName = "shop";
            page.Instance.NewKeyKind = "submission";
            page.Instance.NewKeyDomains = "shop.test";
        });
        await page.Find("form[data-testid=key-create]").SubmitAsync();

        Assert.Contains("mmk_secret-shown-once", page.Find("[data-testid=created-key]").TextContent, StringComparison.Ordinal);
        Assert.Contains("shop.test", page.Find("[data-testid=keys]").TextContent, StringComparison.Ordinal);

        var disable = page.Find("button[aria-label='Disable submission key shop']");
        await page.InvokeAsync(() =>
        {
            page.Instance.KeyKind = "submission";
            page.Instance.KeyName = "shop";
        });
        await disable.Closest("form")!.SubmitAsync();
        Assert.False(Assert.Single(_api.Keys, k => k.Name == "shop").Enabled);
        Assert.Contains("The submission key shop disabled.", page.Markup, StringComparison.Ordinal);
    }

    [Fact]
    public void The_login_form_labels_its_fields_for_password_managers()
    {
        Services.AddSingleton(TimeProvider.System);
        Services.AddOptions();
        Services.AddLogging();
        Services.AddSingleton<MailMesh.Storage.IAdminLoginStore>(new FailingLoginStore());
        Services.AddSingleton<AdminSignIn>();
        var page = Render<Login>();
        Assert.Equal("current-password", page.Find("#password").GetAttribute("autocomplete"));
        Assert.Equal("username", page.Find("#name").GetAttribute("autocomplete"));
        Assert.NotNull(page.Find("label[for=name]"));
        Assert.NotNull(page.Find("label[for=password]"));
    }

    [Theory]
    [InlineData("/admin/messages?state=held", "/admin/messages?state=held")]
    [InlineData("/admin", "/admin")]
    [InlineData("https://evil.test/admin", "/admin")]
    [InlineData("//evil.test/admin", "/admin")]
    [InlineData("/administrator", "/admin")]
    [InlineData("/admin\\..\\x", "/admin")]
    [InlineData(null, "/admin")]
    public void Login_returns_only_to_a_page_of_the_ui(string? returnUrl, string expected) =>
        Assert.Equal(expected, Login.SafeReturnUrl(returnUrl));
}
