using System.Net;
using System.Text.RegularExpressions;

namespace MailMesh.Testing.Https;

/// <summary>
/// A browser without a page renderer, for the admin UI's static server-side rendered forms: one cookie jar (cookies
/// are not bound to a port, so the jar is shared by every replica on 127.0.0.1, as behind a load balancer), redirects
/// not followed, and a form posted as a browser posts it: with the antiforgery token of the page it was read from.
/// </summary>
public sealed partial class AdminUiBrowser : IDisposable
{
    private readonly HttpClient _http = new(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false });
    private readonly Dictionary<string, string> _cookies = new(StringComparer.Ordinal);

    /// <summary>The cookies the browser holds, by name.</summary>
    public IReadOnlyDictionary<string, string> Cookies => _cookies;

    /// <summary>GETs <paramref name="path"/> of the UI at <paramref name="server"/>.</summary>
    public Task<HttpResponseMessage> GetAsync(Uri server, string path) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, new Uri(server, path)));

    /// <summary>
    /// Reads the page at <paramref name="path"/> from <paramref name="readFrom"/> and posts its form
    /// <paramref name="handler"/> (Blazor's form name) with <paramref name="fields"/> to <paramref name="postTo"/>.
    /// </summary>
    public async Task<HttpResponseMessage> PostFormAsync(Uri readFrom, Uri postTo, string path, string handler, IReadOnlyDictionary<string, string> fields)
    {
        string html;
        using (var page = await GetAsync(readFrom, path))
        {
            html = await page.Content.ReadAsStringAsync();
        }

        var token = AntiforgeryToken().Match(html);
        if (!token.Success)
        {
            throw new InvalidOperationException($"no antiforgery token on {readFrom}{path}");
        }

        var form = new Dictionary<string, string>(fields)
        {
            ["_handler"] = handler,
            ["__RequestVerificationToken"] = WebUtility.HtmlDecode(token.Groups[1].Value),
        };
        return await SendAsync(new HttpRequestMessage(HttpMethod.Post, new Uri(postTo, path)) { Content = new FormUrlEncodedContent(form) });
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request)
    {
        using (request)
        {
            if (_cookies.Count > 0)
            {
                request.Headers.Add("Cookie", string.Join("; ", _cookies.Select(c => c.Key + "=" + c.Value)));
            }

            var response = await _http.SendAsync(request);
            if (response.Headers.TryGetValues("Set-Cookie", out var setCookies))
            {
                foreach (var setCookie in setCookies)
                {
                    var pair = setCookie.Split(';', 2)[0];
                    var equals = pair.IndexOf('=', StringComparison.Ordinal);
                    var (name, value) = (pair[..equals].Trim(), pair[(equals + 1)..].Trim());
                    var expired = setCookie.Contains("expires=Thu, 01 Jan 1970", StringComparison.OrdinalIgnoreCase);
                    if (value.Length == 0 || expired)
                    {
                        _cookies.Remove(name);
                    }
                    else
                    {
                        _cookies[name] = value;
                    }
                }
            }

            return response;
        }
    }

    public void Dispose() => _http.Dispose();

    [GeneratedRegex("<input[^>]*name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryToken();
}
