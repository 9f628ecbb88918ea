using MailMesh.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailMesh.Policy.Tests;

public sealed class SuppressionEndpointTests
{
    [Fact]
    public async Task Put_get_list_and_delete_a_suppression()
    {
        await using var host = await PolicyTestHost.StartAsync();
        var loggers = NullLoggerFactory.Instance;

        var put = await PolicyEndpoints.PutAsync("User@Example.COM", new PolicyEndpoints.SuppressionRequest("complaint"), host.Store, host.Time, loggers, default);
        Assert.Equal("user@example.com", Assert.IsType<Ok<Suppression>>(put.Result).Value!.Address);

        var get = await PolicyEndpoints.GetAsync("user@example.com", host.Store, default);
        Assert.Equal("complaint", Assert.IsType<Ok<Suppression>>(get.Result).Value!.Reason);

        var list = await PolicyEndpoints.ListAsync(host.Store, default);
        Assert.Single(Assert.IsType<Ok<IReadOnlyList<Suppression>>>(list.Result).Value!);

        Assert.IsType<NoContent>((await PolicyEndpoints.DeleteAsync("user@example.com", host.Store, loggers, default)).Result);
        var gone = await PolicyEndpoints.DeleteAsync("user@example.com", host.Store, loggers, default);
        Assert.Equal(StatusCodes.Status404NotFound, Assert.IsType<ProblemHttpResult>(gone.Result).StatusCode);
        var missing = await PolicyEndpoints.GetAsync("user@example.com", host.Store, default);
        Assert.Equal(StatusCodes.Status404NotFound, Assert.IsType<ProblemHttpResult>(missing.Result).StatusCode);
    }

    // An address literal is an address (RFC 5321 §4.1.3); the IPv6 form was refused as malformed.
    [Theory]
    [InlineData("user@[192.0.2.1]", "user@[192.0.2.1]")]
    [InlineData("user@[IPv6:2001:DB8::1]", "user@[ipv6:2001:db8::1]")]
    public async Task Address_literals_can_be_suppressed(string address, string stored)
    {
        await using var host = await PolicyTestHost.StartAsync();
        var put = await PolicyEndpoints.PutAsync(address, new PolicyEndpoints.SuppressionRequest(null), host.Store, host.Time, NullLoggerFactory.Instance, default);
        Assert.Equal(stored, Assert.IsType<Ok<Suppression>>(put.Result).Value!.Address);
        Assert.IsType<Ok<Suppression>>((await PolicyEndpoints.GetAsync(address, host.Store, default)).Result);
    }

    [Theory]
    [InlineData("not-an-address")]
    [InlineData("user@")]
    [InlineData("@a.example:user@b.example")]
    [InlineData("<user@example.com>")]
    [InlineData("user@bad_domain!")]
    public async Task Malformed_address_answers_400_with_a_reason(string address)
    {
        await using var host = await PolicyTestHost.StartAsync();
        var result = await PolicyEndpoints.PutAsync(address, null, host.Store, host.Time, NullLoggerFactory.Instance, default);
        var problem = Assert.IsType<ProblemHttpResult>(result.Result);
        Assert.Equal(StatusCodes.Status400BadRequest, problem.StatusCode);
        Assert.Contains("is not an email address", problem.ProblemDetails.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_limit_is_validated()
    {
        await using var host = await PolicyTestHost.StartAsync();
        var result = await PolicyEndpoints.ListAsync(host.Store, default, limit: 0);
        Assert.Equal(StatusCodes.Status400BadRequest, Assert.IsType<ProblemHttpResult>(result.Result).StatusCode);
    }
}
