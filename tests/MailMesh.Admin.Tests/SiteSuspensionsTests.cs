using Bunit;
using MailMesh.Admin.Api;
using MailMesh.Admin.Components.Pages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Admin.Tests;

/// <summary>Site suspensions: the live shaping actions for everyone; suspending and lifting only for operators.</summary>
public sealed partial class PageTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2030-01-02T03:04:05Z");

    private void TwoSiteActions()
    {
        Services.AddSingleton<TimeProvider>(new FakeTimeProvider(Now));
        _api.SiteActions.Add(new SiteActionItem(Guid.Parse("aaaaaaaa-0000-0000-0000-000000000001"), "google", "192.0.2.10", "suspend", null, null,
            Now.AddMinutes(-5), Now.AddMinutes(25), "421 4.7.28 rate limited (gmail-rate-limited)", "automation:gmail-rate-limited"));
        _api.SiteActions.Add(new SiteActionItem(Guid.Parse("aaaaaaaa-0000-0000-0000-000000000002"), "mx1.hoster.test,mx2.hoster.test", null, "limit", 2, 0.5,
            Now.AddMinutes(-1), Now.AddHours(1), "slow down", "admin:olivia"));
    }

    [Fact]
    public void Site_actions_are_listed_and_a_viewer_may_not_change_them()
    {
        LogIn(AdminRoles.Viewer);
        TwoSiteActions();

        var page = Render<SiteSuspensions>();

        var rows = page.FindAll("[data-testid=suspensions] tbody tr");
        Assert.Equal(2, rows.Count);
        Assert.Contains("192.0.2.10", rows[0].TextContent, StringComparison.Ordinal);
        Assert.Contains("suspended", rows[0].TextContent, StringComparison.Ordinal);
        Assert.Contains("2030-01-02 03:29:05 UTC", rows[0].TextContent, StringComparison.Ordinal);
        Assert.Contains("every", rows[1].TextContent, StringComparison.Ordinal);
        Assert.Contains("at most 2 connection(s), at most 0.5 message(s)/s", rows[1].TextContent, StringComparison.Ordinal);
        Assert.Empty(page.FindAll("form[method=post]"));
    }

    [Fact]
    public void An_operator_may_suspend_a_site_and_lift_each_action_with_labelled_fields()
    {
        LogIn(AdminRoles.Operator);
        TwoSiteActions();

        var page = Render<SiteSuspensions>();

        Assert.True(page.Find("#ss-site").HasAttribute("required"));
        Assert.Equal("2030-01-02T04:04", page.Find("#ss-until").GetAttribute("value"));
        Assert.Equal(
            ["Lift suspend of google from 192.0.2.10", "Lift limit of mx1.hoster.test,mx2.hoster.test"],
            page.FindAll("button[aria-label^=Lift]").Select(b => b.GetAttribute("aria-label")));
        Assert.Equal("aaaaaaaa-0000-0000-0000-000000000001", page.Find("input[name=LiftId]").GetAttribute("value"));
        AssertEveryFieldIsLabelled(page);
    }

    [Fact]
    public void No_action_says_so()
    {
        LogIn(AdminRoles.Viewer);
        Services.AddSingleton<TimeProvider>(new FakeTimeProvider(Now));
        Assert.Contains("No site is suspended or limited.", Render<SiteSuspensions>().Markup, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2030-01-02T04:04", "2030-01-02T04:04:00Z")]
    [InlineData("2030-01-02T04:04:30", "2030-01-02T04:04:30Z")]
    [InlineData("tomorrow", null)]
    [InlineData("", null)]
    public void The_end_of_a_suspension_is_read_as_UTC(string text, string? expected) =>
        Assert.Equal(expected is null ? null : DateTimeOffset.Parse(expected), SiteSuspensions.ParseUntil(text));
}
