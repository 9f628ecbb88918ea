using Bunit;
using MailMesh.Admin.Api;
using MailMesh.Admin.Components.Pages;

namespace MailMesh.Admin.Tests;

/// <summary>The dashboard's traffic charts: inline SVG per series, each with its numbers in words.</summary>
public sealed partial class PageTests
{
    [Fact]
    public void The_dashboard_charts_accepted_delivered_deferred_and_bounced_per_minute()
    {
        LogIn(AdminRoles.Viewer);
        var start = DateTimeOffset.Parse("2030-01-02T02:05:00Z");
        _api.Rates = new TrafficRates(start.AddMinutes(3), [.. Enumerable.Range(0, 4).Select(i => new MinuteRates(start.AddMinutes(i), 10 * i, 5 * i, i, i == 3 ? 2 : 0))]);

        var page = Render<Dashboard>();

        Assert.Equal(["accepted", "delivered", "deferred", "bounced"], page.FindAll("figure.chart").Select(f => f.GetAttribute("data-testid")!["chart-".Length..]));
        var delivered = page.Find("[data-testid=chart-delivered]");
        Assert.Equal("Delivered per minute: 30 over the last 4 minutes, at most 15 in a minute", delivered.QuerySelector("svg")!.GetAttribute("aria-label"));
        Assert.Equal("img", delivered.QuerySelector("svg")!.GetAttribute("role"));
        Assert.Equal(4, delivered.QuerySelector("polyline")!.GetAttribute("points")!.Split(' ').Length);
        Assert.Contains("02:05", delivered.TextContent, StringComparison.Ordinal);
        Assert.Contains("02:08 UTC", delivered.TextContent, StringComparison.Ordinal);

        // The peak touches the top, zero lies on the axis.
        var points = delivered.QuerySelector("polyline")!.GetAttribute("points")!.Split(' ');
        Assert.Equal("0,89", points[0]);
        Assert.Equal("600,4", points[^1]);
        Assert.DoesNotContain("http", page.Find("svg").OuterHtml, StringComparison.Ordinal);
    }

    [Fact]
    public void No_traffic_draws_flat_charts_not_an_error()
    {
        LogIn(AdminRoles.Viewer);
        var start = DateTimeOffset.Parse("2030-01-02T02:05:00Z");
        _api.Rates = new TrafficRates(start, [new MinuteRates(start, 0, 0, 0, 0), new MinuteRates(start.AddMinutes(1), 0, 0, 0, 0)]);

        var page = Render<Dashboard>();

        Assert.Equal("0,89 600,89", page.Find("[data-testid=chart-bounced] polyline").GetAttribute("points"));
        Assert.Empty(page.FindAll("[role=alert]"));
    }
}
