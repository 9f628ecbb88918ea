using System.Net;
using MailMesh.ServiceDefaults;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.FunctionalTests;

public sealed class HostingTests
{
    [Fact]
    public async Task Http_endpoints_from_Urls_keep_working_next_to_SMTP()
    {
        await using var host = await IngressHost.StartAsync();
        var smtp = host.SmtpEndPoint;
        Assert.NotEqual(0, smtp.Port);
        var addresses = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        var http = addresses.Select(a => new Uri(a)).Single(u => u.Port != smtp.Port);
        using var client = new HttpClient { BaseAddress = http, Timeout = TimeSpan.FromSeconds(15) };
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
    }

    [Fact]
    public async Task The_socket_transport_receives_without_a_peek_before_each_read()
    {
        // Kestrel's default waits for data with a one-byte MSG_PEEK before every 4 KiB receive (strace: 120 peeks for 120
        // reads over five 100 KB messages); Ingress turns that off.
        await using var host = await IngressHost.StartAsync();
        Assert.False(host.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.WaitForDataBeforeAllocatingBuffer);
    }

    [Theory]
    [InlineData("Ingress:Listen", "foo", "Ingress:Listen: 'foo' is not an endpoint (host:port)")]
    [InlineData("Ingress:Listen", "::1:25", "Ingress:Listen: '::1:25' is not an endpoint (host:port)")]
    [InlineData("Ingress:MaxRecipients", "10", "Ingress:MaxRecipients: must be at least 100")]
    [InlineData("Ingress:HostName", "not a host", "Ingress:HostName: 'not a host' is not a domain name")]
    [InlineData("Ingress:CommandTimeout", "-00:00:01", "Ingress:CommandTimeout: must be positive")]
    [InlineData("Ingress:AnnounceInterval", "00:00:05", "Ingress:AnnounceInterval: must be between 0 and 1 second")]
    [InlineData("Ingress:MaxRecipients", "lots", "'Ingress:MaxRecipients'")]
    [InlineData("Ingress:HostName:0", "mx.example.com", "Ingress:HostName: takes one value, but was given a list or section (Ingress:HostName:0)")]
    public async Task Invalid_options_stop_start_up_naming_the_key(string key, string value, string expected)
    {
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => IngressHost.StartAsync(new() { [key] = value }));
        Assert.True(ConfigurationErrors.TryDescribe(failure, out var message), failure.ToString());
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Idle_client_gets_421_after_the_command_timeout()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:CommandTimeout"] = "00:00:00.500" });
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        var reply = await client.ReadReplyAsync();
        Assert.Equal(421, reply.Code);
        Assert.Equal("4.4.2", reply.Enhanced);
        Assert.True(await client.IsClosedAsync());
    }

    [Fact]
    public async Task Stalled_data_gets_421_after_the_data_block_timeout_and_nothing_is_stored()
    {
        await using var host = await IngressHost.StartAsync(new() { ["Ingress:DataBlockTimeout"] = "00:00:00.500" });
        await using var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync("Subject: half\r\n\r\nhalf a message\r\n");
        var reply = await client.ReadReplyAsync();
        Assert.Equal(421, reply.Code);
        Assert.Empty(host.Spool.Stored);
    }
}
