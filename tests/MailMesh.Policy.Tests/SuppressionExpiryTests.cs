using MailMesh.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailMesh.Policy.Tests;

/// <summary>A suppression has a reason, a source and an optional expiry; an expired one no longer refuses the recipient.</summary>
public sealed class SuppressionExpiryTests
{
    private static readonly Dictionary<string, string?> Settings = new() { ["Policy:LocalDomains"] = "mail.example" };

    [Fact]
    public async Task Put_with_reason_and_expiry_is_shown_with_source_api()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        var expires = host.Time.GetUtcNow().AddDays(30);
        var put = await PolicyEndpoints.PutAsync(
            "gone@mail.example", new PolicyEndpoints.SuppressionRequest("asked to stop", expires), host.Store, host.Time, NullLoggerFactory.Instance, default);
        Assert.IsType<Ok<Suppression>>(put.Result);

        var shown = Assert.IsType<Ok<Suppression>>((await PolicyEndpoints.GetAsync("gone@mail.example", host.Store, default)).Result).Value!;
        Assert.Equal("asked to stop", shown.Reason);
        Assert.Equal(SuppressionSources.Api, shown.Source);
        Assert.Equal(expires.ToUnixTimeMilliseconds(), shown.ExpiresAt?.ToUnixTimeMilliseconds());
        var listed = Assert.Single(Assert.IsType<Ok<IReadOnlyList<Suppression>>>((await PolicyEndpoints.ListAsync(host.Store, default)).Result).Value!);
        Assert.Equal(SuppressionSources.Api, listed.Source);
        Assert.NotNull(listed.ExpiresAt);
    }

    [Fact]
    public async Task An_expiry_in_the_past_is_refused()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        var result = await PolicyEndpoints.PutAsync(
            "gone@mail.example", new PolicyEndpoints.SuppressionRequest(null, host.Time.GetUtcNow()), host.Store, host.Time, NullLoggerFactory.Instance, default);
        var problem = Assert.IsType<ProblemHttpResult>(result.Result);
        Assert.Equal(StatusCodes.Status400BadRequest, problem.StatusCode);
        Assert.Contains("expiresAt", problem.ProblemDetails.Detail, StringComparison.Ordinal);
        Assert.Null(await host.Store.GetSuppressionAsync("gone@mail.example", default));
    }

    [Fact]
    public async Task A_suppression_refuses_until_it_expires()
    {
        await using var host = await PolicyTestHost.StartAsync(Settings);
        await host.Store.AddSuppressionAsync(
            new Suppression
            {
                Address = "gone@mail.example",
                Reason = "complained",
                Source = SuppressionSources.Complaint,
                CreatedAt = host.Time.GetUtcNow(),
                ExpiresAt = host.Time.GetUtcNow().AddHours(1),
            },
            default);

        Assert.False((await host.RecipientAsync("198.51.100.7", "gone@mail.example")).Accepted);
        host.Time.Advance(TimeSpan.FromMinutes(59));
        Assert.False((await host.RecipientAsync("198.51.100.7", "gone@mail.example")).Accepted);
        host.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.True((await host.RecipientAsync("198.51.100.7", "gone@mail.example")).Accepted);

        // Still listed (an operator can see it ran out), just no longer suppressing.
        Assert.NotNull(await host.Store.GetSuppressionAsync("gone@mail.example", default));
    }
}
