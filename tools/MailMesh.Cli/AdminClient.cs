using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace MailMesh.Cli;

/// <summary>The admin API over HTTP: every answer that is not a success becomes a <see cref="CliException"/> with its exit code.</summary>
internal sealed class AdminClient(CliSettings settings) : IDisposable
{
    private readonly HttpClient _http = Create(settings);

    private static HttpClient Create(CliSettings settings)
    {
        var http = new HttpClient { BaseAddress = settings.Url, Timeout = TimeSpan.FromMinutes(10) };
        if (settings.Key is { } key)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return http;
    }

    public Task<JsonElement> GetAsync(string path, CancellationToken cancellationToken) =>
        SendJsonAsync(HttpMethod.Get, path, null, cancellationToken);

    public Task<JsonElement> SendJsonAsync(HttpMethod method, string path, object? body, CancellationToken cancellationToken) =>
        SendAsync(method, path, body is null ? null : new StringContent(JsonSerializer.Serialize(body, Output.Json), Encoding.UTF8, "application/json"), cancellationToken);

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        using var response = await RequestAsync(method, path, content, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (text.Length == 0)
        {
            return default;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            throw new CliException(ExitCodes.Server, $"The server answered {(int)response.StatusCode} with something that is not JSON.");
        }
    }

    /// <summary>Streams a successful answer's body to <paramref name="destination"/>.</summary>
    public async Task DownloadAsync(string path, Stream destination, CancellationToken cancellationToken)
    {
        using var response = await RequestAsync(HttpMethod.Get, path, null, cancellationToken);
        await response.Content.CopyToAsync(destination, cancellationToken);
    }

    private async Task<HttpResponseMessage> RequestAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(ExitCodes.Unreachable, $"Cannot reach the admin API at {settings.Url}: {e.Message}");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CliException(ExitCodes.Unreachable, $"The admin API at {settings.Url} did not answer in time.");
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var detail = await ProblemAsync(response, cancellationToken);
            var code = response.StatusCode switch
            {
                HttpStatusCode.Unauthorized => ExitCodes.Auth,
                HttpStatusCode.Forbidden => ExitCodes.Auth,
                HttpStatusCode.NotFound => ExitCodes.NotFound,
                HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity or HttpStatusCode.MethodNotAllowed => ExitCodes.Usage,
                HttpStatusCode.Conflict => ExitCodes.Usage,
                _ => ExitCodes.Server,
            };
            var hint = response.StatusCode == HttpStatusCode.Unauthorized && settings.Key is null
                ? " (no key: pass --key, set MAILMESH_API_KEY or write it to " + "~/.config/mailmesh/cli.json)"
                : string.Empty;
            throw new CliException(code, $"{(int)response.StatusCode} {detail}{hint}");
        }
    }

    private static async Task<string> ProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            using var problem = JsonDocument.Parse(text);
            var title = problem.RootElement.TryGetProperty("title", out var t) ? t.GetString() : null;
            var detail = problem.RootElement.TryGetProperty("detail", out var d) ? d.GetString() : null;
            return string.Join(": ", new[] { title, detail }.Where(s => !string.IsNullOrEmpty(s)));
        }
        catch (JsonException)
        {
            return response.ReasonPhrase ?? "error";
        }
    }

    public void Dispose() => _http.Dispose();
}
