using Bunit;
using MailMesh.Admin.Api;
using MailMesh.Admin.Components.Pages;

namespace MailMesh.Admin.Tests;

/// <summary>The queue by destination: the qshape table for everyone, the bulk action form only for operators.</summary>
public sealed partial class PageTests
{
    private void QueueOfTwoDestinations() => _api.Summary = _api.Summary with
    {
        Total = new QueueRow("*", 5, [3, 2, 0], new Dictionary<string, long> { ["deferred"] = 4, ["held"] = 1 }, DateTimeOffset.Parse("2030-01-02T02:04:05Z"), 3700),
        Domains =
        [
            new QueueRow("slow.test", 4, [2, 2, 0], new Dictionary<string, long> { ["deferred"] = 3, ["held"] = 1 }, null, 3700),
            new QueueRow("dest.test", 1, [1, 0, 0], new Dictionary<string, long> { ["deferred"] = 1 }, null, 60),
        ],
        DomainCount = 2,
    };

    [Fact]
    public void The_queue_page_lists_destinations_by_age_with_a_total_row()
    {
        LogIn(AdminRoles.Viewer);
        QueueOfTwoDestinations();

        var page = Render<QueuePage>();

        var rows = page.FindAll("[data-testid=queue] tbody tr");
        Assert.Equal(["slow.test", "dest.test"], rows.Select(r => r.QuerySelector("th")!.TextContent));
        Assert.Equal(["Destination", "Total", "0-5m", "5-60m", "60m+"], page.FindAll("[data-testid=queue] thead th").Take(5).Select(h => h.TextContent));
        Assert.Contains("5", page.Find("[data-testid=queue] tfoot td.num").TextContent, StringComparison.Ordinal);
        Assert.NotNull(page.Find("a[href='admin/messages?domain=slow.test']"));

        // A viewer is offered no action at all.
        Assert.Empty(page.FindAll("form[method=post]"));
        Assert.Empty(page.FindAll("a[aria-label^='Act on']"));
    }

    [Fact]
    public void An_operator_chooses_a_destination_state_and_action_with_every_field_labelled()
    {
        LogIn(AdminRoles.Operator);
        QueueOfTwoDestinations();

        var page = RenderAt<QueuePage>("admin/queue?domain=dest.test");

        Assert.Equal(["slow.test", "dest.test"], page.FindAll("#queue-domain option").Select(o => o.GetAttribute("value")));
        Assert.Equal("dest.test", page.Find("#queue-domain option[selected]").GetAttribute("value"));
        Assert.Equal(["queued,deferred,held", "deferred", "queued", "held"], page.FindAll("#queue-state option").Select(o => o.GetAttribute("value")));
        Assert.Equal(["hold", "release", "retry", "bounce", "delete"], page.FindAll("#queue-action option").Select(o => o.GetAttribute("value")));
        Assert.Single(page.FindAll("form[method=post]"));
        Assert.Contains("selected", page.FindAll("[data-testid=queue] tbody tr")[1].GetAttribute("class"), StringComparison.Ordinal);
        AssertEveryFieldIsLabelled(page);
    }

    [Fact]
    public void An_empty_queue_offers_nothing_to_act_on()
    {
        LogIn(AdminRoles.Operator);
        var page = Render<QueuePage>();
        Assert.Contains("Nothing is waiting.", page.Markup, StringComparison.Ordinal);
        Assert.Empty(page.FindAll("form[method=post]"));
    }

    [Theory]
    [InlineData("dest.test", "deferred", "hold", true)]
    [InlineData(" dest.test ", "queued,deferred,held", "delete", true)]
    [InlineData("", "deferred", "hold", false)]
    [InlineData("dest.test", "delivered", "hold", false)]
    [InlineData("dest.test", "deferred", "purge", false)]
    [InlineData("dest test", "deferred", "hold", false)]
    public void A_destination_action_is_only_a_known_action_on_waiting_states_of_one_domain(string domain, string state, string action, bool valid)
    {
        var review = QueuePage.Parse(domain, state, action);
        Assert.Equal(valid, review is not null);
        if (review is not null)
        {
            var filter = QueuePage.Filter(review);
            Assert.Equal("dest.test", filter.Domain);
            Assert.Equal(state, filter.State);
            Assert.False(filter.IsEmpty);
        }
    }
}
