using System.Net;
using System.Text;
using System.Text.Json;
using MailMesh.Admin.Api;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace MailMesh.Admin.Tests;

/// <summary>The UI's admin API client: the key, the service each call goes to, filters as the API reads them, problems as messages.</summary>
public sealed class AdminApiClientTests
{
    private readonly List<(HttpRequestMessage Request, string? Body)> _requests = [];
    private Func<HttpRequestMessage, HttpResponseMessage> _answer = _ => Json("""{"action":"hold","changed":2,"skippedInFlight":0,"auditId":7,"dsnsQueued":0}""");

    private AdminApiClient Create(AdminUiOptions? options = null, string? ownAddress = null, IHttpContextAccessor? context = null)
    {
        var server = new Server();
        if (ownAddress is not null)
        {
            var addresses = new ServerAddressesFeature();
            addresses.Addresses.Add(ownAddress);
            server.Features.Set<IServerAddressesFeature>(addresses);
        }

        var settings = options ?? new AdminUiOptions { QueueUrl = new Uri("http://queue:8080"), PolicyUrl = new Uri("http://policy:8080"), ApiKey = "mmk_ui" };
        return new AdminApiClient(new HttpClient(new Handler(this)), new Monitor<AdminUiOptions>(settings), server, context);
    }

    private static HttpResponseMessage Json(string json, HttpStatusCode status = HttpStatusCode.OK, string type = "application/json") =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, type) };

    [Fact]
    public async Task A_bulk_action_posts_the_filter_to_Queue_with_the_key()
    {
        var result = await Create().ActOnFilterAsync("hold", new MessageQuery { Recipient = " bulk@dest.test ", State = "deferred" }, null, default);

        Assert.Equal(2, result.Changed);
        var (request, body) = Assert.Single(_requests);
        Assert.Equal("http://queue:8080/api/v1/admin/messages/actions", request.RequestUri!.ToString());
        Assert.Equal("Bearer mmk_ui", request.Headers.Authorization!.ToString());
        using var json = JsonDocument.Parse(body!);
        Assert.Equal("hold", json.RootElement.GetProperty("action").GetString());
        Assert.Equal("bulk@dest.test", json.RootElement.GetProperty("filter").GetProperty("recipient").GetString());
        Assert.Equal("deferred", json.RootElement.GetProperty("filter").GetProperty("state").GetString());
        Assert.False(json.RootElement.TryGetProperty("all", out _));
    }

    [Fact]
    public async Task A_webhook_is_changed_with_PATCH_and_deleted_with_DELETE_at_Queue()
    {
        var id = Guid.Parse("0b6e2f5c-1d1e-4a55-9c1b-6f0f1d2a3b4c");
        var client = Create();
        _answer = _ => Json($$"""{"webhook":{"id":"{{id}}","url":"https://hooks.example/v2","events":[],"signed":true,"enabled":true,"source":"api","createdAt":"2030-01-02T03:04:05Z","createdBy":"ui"},"secret":"whsec_new"}""");

        var saved = await client.UpdateWebhookAsync(id, " https://hooks.example/v2 ", [], rotateSecret: true, default);

        Assert.Equal(("https://hooks.example/v2", "whsec_new"), (saved.Webhook.Url, saved.Secret));
        var (patch, body) = Assert.Single(_requests);
        Assert.Equal(HttpMethod.Patch, patch.Method);
        Assert.Equal($"http://queue:8080/api/v1/admin/webhooks/{id}", patch.RequestUri!.ToString());
        using (var json = JsonDocument.Parse(body!))
        {
            Assert.Equal("https://hooks.example/v2", json.RootElement.GetProperty("url").GetString());
            Assert.Equal(0, json.RootElement.GetProperty("events").GetArrayLength());
            Assert.True(json.RootElement.GetProperty("rotateSecret").GetBoolean());
        }

        _answer = _ => new HttpResponseMessage(HttpStatusCode.NoContent);
        await client.DeleteWebhookAsync(id, default);
        Assert.Equal(HttpMethod.Delete, _requests[^1].Request.Method);
        Assert.Equal($"http://queue:8080/api/v1/admin/webhooks/{id}", _requests[^1].Request.RequestUri!.ToString());
    }

    [Fact]
    public async Task A_password_reset_posts_to_Ingress_and_returns_a_generated_password()
    {
        var client = Create(new AdminUiOptions { QueueUrl = new Uri("http://queue:8080"), PolicyUrl = new Uri("http://policy:8080"), IngressUrl = new Uri("http://ingress:8080"), ApiKey = "mmk_ui" });
        _answer = _ => Json("""{"name":"app 1","password":"generated","changedAt":"2030-01-02T03:04:05Z"}""");

        var reset = await client.ResetSmtpUserPasswordAsync("app 1", "", default);

        Assert.Equal("generated", reset.Password);
        var (post, body) = Assert.Single(_requests);
        Assert.Equal("http://ingress:8080/api/v1/admin/smtp-users/app%201/password", post.RequestUri!.AbsoluteUri);
        using var json = JsonDocument.Parse(body!);
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("password").ValueKind);
    }

    [Fact]
    public async Task An_empty_filter_never_reaches_the_API()
    {
        var error = await Assert.ThrowsAsync<AdminApiException>(() => Create().ActOnFilterAsync("delete", new MessageQuery { Sender = " " }, null, default));
        Assert.Equal(400, error.Status);
        Assert.Empty(_requests);
    }

    [Fact]
    public async Task A_search_sends_the_filter_cursor_and_limit_as_query_parameters()
    {
        _answer = _ => Json("""{"items":[],"next":null}""");
        await Create().ListMessagesAsync(new MessageQuery { Sender = "a@b.test", Class = "quota" }, "c1", 50, default);
        Assert.Equal("http://queue:8080/api/v1/admin/messages?sender=a@b.test&class=quota&cursor=c1&limit=50", _requests[0].Request.RequestUri!.AbsoluteUri);
    }

    [Fact]
    public async Task Suppressions_go_to_Policy()
    {
        _answer = _ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
        await Create().AddSuppressionAsync("x@dest.test", "asked", default);
        Assert.Equal("http://policy:8080/api/v1/admin/suppressions/x%40dest.test", _requests[0].Request.RequestUri!.AbsoluteUri);
        Assert.Equal(HttpMethod.Put, _requests[0].Request.Method);
    }

    [Fact]
    public async Task A_problem_becomes_the_error_message_and_an_unknown_message_null()
    {
        _answer = _ => Json("""{"title":"Invalid state","detail":"'x' is not a state."}""", HttpStatusCode.BadRequest, "application/problem+json");
        var error = await Assert.ThrowsAsync<AdminApiException>(() => Create().ListMessagesAsync(new MessageQuery { State = "x" }, null, 50, default));
        Assert.Equal("Invalid state: 'x' is not a state.", error.Message);
        Assert.Equal(400, error.Status);

        _answer = _ => Json("""{"title":"Unknown message"}""", HttpStatusCode.NotFound, "application/problem+json");
        Assert.Null(await Create().GetMessageAsync(Guid.NewGuid(), default));

        _answer = _ => new HttpResponseMessage(HttpStatusCode.BadGateway) { Content = new StringContent("<html>") };
        Assert.Equal("502 Bad Gateway", (await Assert.ThrowsAsync<AdminApiException>(() => Create().GetQueueSummaryAsync(10, default))).Message);
    }

    [Fact]
    public async Task In_standalone_every_service_is_this_process_on_its_own_address()
    {
        _answer = _ => Json("[]");
        var client = Create(new AdminUiOptions { SameProcess = true, ApiKey = "mmk_self" }, ownAddress: "http://0.0.0.0:8025");
        await client.ListKeysAsync(default);
        await client.ListMailboxesAsync(null, 10, default);
        Assert.Equal("http://127.0.0.1:8025/api/v1/admin/keys", _requests[0].Request.RequestUri!.AbsoluteUri);
        Assert.StartsWith("http://127.0.0.1:8025/api/v1/admin/mailboxes/", _requests[1].Request.RequestUri!.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_Mailbox_or_Ingress_URL_those_lists_are_empty_and_nothing_is_called()
    {
        Assert.Empty(await Create().ListMailboxesAsync(null, 10, default));
        Assert.Empty(await Create().ListSmtpUsersAsync(default));
        Assert.Empty(_requests);
    }

    [Fact]
    public async Task Writes_name_the_logged_in_account_for_the_audit_and_reads_do_not()
    {
        var person = new DefaultHttpContext
        {
            User = new System.Security.Claims.ClaimsPrincipal(new System.Security.Claims.ClaimsIdentity(
                [new System.Security.Claims.Claim(System.Security.Claims.ClaimTypes.Name, "alice")], "cookie")),
        };
        var client = Create(
            new AdminUiOptions { QueueUrl = new Uri("http://queue:8080"), PolicyUrl = new Uri("http://policy:8080"), IngressUrl = new Uri("http://ingress:8080"), ApiKey = "mmk_ui" },
            context: new HttpContextAccessor { HttpContext = person });

        _answer = _ => Json("""{"name":"app1","senderDomains":null,"password":"generated","createdAt":"2030-01-02T03:04:05Z","createdBy":"alice (via ui)"}""", HttpStatusCode.Created);
        var created = await client.CreateSmtpUserAsync(" app1 ", "", null, default);
        Assert.Equal("generated", created.Password);
        var (post, body) = Assert.Single(_requests);
        Assert.Equal("http://ingress:8080/api/v1/admin/smtp-users", post.RequestUri!.ToString());
        Assert.Equal(["alice"], post.Headers.GetValues("X-MailMesh-Actor"));
        using (var json = JsonDocument.Parse(body!))
        {
            Assert.Equal("app1", json.RootElement.GetProperty("name").GetString());
            Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("password").ValueKind);
        }

        _answer = _ => Json("""{"name":"app1","enabled":false,"changed":true}""");
        Assert.True((await client.SetSmtpUserEnabledAsync("app1", enabled: false, default)).Changed);
        Assert.Equal("http://ingress:8080/api/v1/admin/smtp-users/app1/disable", _requests[1].Request.RequestUri!.ToString());
        Assert.Equal(["alice"], _requests[1].Request.Headers.GetValues("X-MailMesh-Actor"));

        _answer = _ => Json("[]");
        await client.ListSmtpUsersAsync(default);
        Assert.False(_requests[2].Request.Headers.Contains("X-MailMesh-Actor"));

        // Outside a page request (no logged-in account) nothing is claimed.
        _requests.Clear();
        _answer = _ => Json("""{"name":"app1","enabled":true,"changed":true}""");
        await Create(new AdminUiOptions { QueueUrl = new Uri("http://queue:8080"), PolicyUrl = new Uri("http://policy:8080"), IngressUrl = new Uri("http://ingress:8080"), ApiKey = "mmk_ui" })
            .SetSmtpUserEnabledAsync("app1", enabled: true, default);
        Assert.False(Assert.Single(_requests).Request.Headers.Contains("X-MailMesh-Actor"));
    }

    private sealed class Handler(AdminApiClientTests test) : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
            test._requests.Add((request, body));
            return test._answer(request);
        }
    }

    private sealed class Server : IServer
    {
        public IFeatureCollection Features { get; } = new FeatureCollection();

        public Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken)
            where TContext : notnull => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose()
        {
        }
    }

    private sealed class ServerAddressesFeature : IServerAddressesFeature
    {
        public ICollection<string> Addresses { get; } = [];

        public bool PreferHostingUrls { get; set; }
    }
}
