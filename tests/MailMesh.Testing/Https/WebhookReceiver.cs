using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MailMesh.Testing.Https;

/// <summary>A real HTTP server on 127.0.0.1 and a free port that records every POST and answers from a script.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    /// <summary>A scripted answer that never comes: the request waits until the client gives up.</summary>
    public const int Hang = 0;

    private readonly WebApplication _app;
    private readonly Channel<ReceivedRequest> _received = Channel.CreateUnbounded<ReceivedRequest>();

    private WebhookReceiver(WebApplication app) => _app = app;

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Status codes to answer with, in order (<see cref="Hang"/> for no answer); 200 once they run out.</summary>
    public ConcurrentQueue<int> Script { get; } = new();

    /// <summary>Status codes for one path only, in order, taken before <see cref="Script"/>: a test whose POSTs run in
    /// parallel can say which endpoint fails without depending on which request arrives first.</summary>
    public ConcurrentDictionary<string, ConcurrentQueue<int>> ScriptFor { get; } = new(StringComparer.Ordinal);

    public ConcurrentQueue<ReceivedRequest> All { get; } = new();

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/{**path}", receiver.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        receiver.BaseAddress = new Uri(address);
        return receiver;
    }

    public Uri Url(string path) => new(BaseAddress, path);

    /// <summary>The next request, or a failed test after 10 seconds.</summary>
    public Task<ReceivedRequest> NextAsync() => NextAsync(TimeSpan.FromSeconds(10));

    /// <summary>The next request, or a failed test after <paramref name="patience"/> (a whole relay takes longer than one POST).</summary>
    public async Task<ReceivedRequest> NextAsync(TimeSpan patience)
    {
        using var timeout = new CancellationTokenSource(patience);
        return await _received.Reader.ReadAsync(timeout.Token);
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        var request = new ReceivedRequest(
            context.Request.Path.Value ?? "",
            context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
            buffer.ToArray());
        All.Enqueue(request);
        await _received.Writer.WriteAsync(request, context.RequestAborted);

        var status = ScriptFor.TryGetValue(request.Path, out var forPath) && forPath.TryDequeue(out var scripted) ? scripted
            : Script.TryDequeue(out scripted) ? scripted
            : StatusCodes.Status200OK;
        if (status == Hang)
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                // The client timed out and closed the connection, which is what the test waits for.
            }

            return;
        }

        context.Response.StatusCode = status;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>One POST as the receiver saw it.</summary>
public sealed record ReceivedRequest(string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body);
