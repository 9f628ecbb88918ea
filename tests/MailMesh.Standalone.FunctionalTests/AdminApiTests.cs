using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// The status and management endpoints answer only admin API keys, each endpoint only with its scope; submission and
/// admin keys are not interchangeable; health and metrics stay open for probes and scrapers.
/// </summary>
public sealed class AdminApiTests : IClassFixture<AdminApiTests.Host>
{
    private readonly Host _host;

    public AdminApiTests(Host host) => _host = host;

    public static TheoryData<string, string> AdminEndpoints => new()
    {
        { "GET", "/api/v1/queue" },
        { "GET", $"/api/v1/messages/{Guid.Empty}" },
        { "GET", "/api/v1/suppressions" },
        { "GET", "/api/v1/suppressions/someone@example.org" },
        { "PUT", "/api/v1/suppressions/someone@example.org" },
        { "DELETE", "/api/v1/suppressions/someone@example.org" },
        { "GET", "/api/v1/mailboxes" },
        { "PUT", "/api/v1/mailboxes/someone@example.org" },
        { "GET", "/api/v1/mailbox-aliases" },
    };

    [Theory]
    [MemberData(nameof(AdminEndpoints))]
    public async Task No_key_is_401_with_a_Bearer_challenge(string method, string path)
    {
        using var http = TestKeys.Client(_host.Port, key: null);
        using var response = await http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer realm=\"mailmesh-admin\"", response.Headers.WwwAuthenticate.ToString());
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    // Review of issue 7 §5: other spellings of the same routes, and other methods, answer nothing without a key.
    [Theory]
    [InlineData("GET", "/api/v1/queue/")]
    [InlineData("GET", "/API/V1/QUEUE")]
    [InlineData("GET", "/api/v1/%71ueue")]
    [InlineData("GET", "/api/v1//queue")]
    [InlineData("GET", "/api/v1/suppressions/")]
    [InlineData("GET", "/api/v1/Suppressions/someone%40example.org")]
    [InlineData("GET", "/api/v1/suppressions/someone%2F..%2F..%2Fqueue")]
    [InlineData("GET", "/api/v1/messages/00000000-0000-0000-0000-000000000000/")]
    [InlineData("HEAD", "/api/v1/queue")]
    [InlineData("HEAD", "/api/v1/suppressions")]
    [InlineData("OPTIONS", "/api/v1/queue")]
    [InlineData("OPTIONS", "/api/v1/suppressions/someone@example.org")]
    [InlineData("POST", "/api/v1/suppressions/someone@example.org")]
    [InlineData("PATCH", "/api/v1/suppressions/someone@example.org")]
    [InlineData("POST", "/api/v1/messages/00000000-0000-0000-0000-000000000000")]
    public async Task Route_variants_and_other_methods_answer_nothing_without_a_key(string method, string path)
    {
        using var http = TestKeys.Client(_host.Port, key: null);
        using var response = await http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Contains(response.StatusCode, new[] { HttpStatusCode.Unauthorized, HttpStatusCode.NotFound, HttpStatusCode.MethodNotAllowed });
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("recipients", body, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("someone@", body, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [MemberData(nameof(AdminEndpoints))]
    public async Task A_wrong_key_is_401_invalid_token(string method, string path)
    {
        using var http = TestKeys.Client(_host.Port, "mmk_not-a-configured-key");
        using var response = await http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("error=\"invalid_token\"", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(AdminEndpoints))]
    public async Task A_submission_key_is_not_an_admin_key(string method, string path)
    {
        using var http = TestKeys.Client(_host.Port, TestKeys.Submission);
        using var response = await http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Theory]
    [InlineData("GET", "/api/v1/queue", "queue:read")]
    [InlineData("GET", "/api/v1/suppressions", "suppressions:read")]
    [InlineData("PUT", "/api/v1/suppressions/someone@example.org", "suppressions:write")]
    [InlineData("DELETE", "/api/v1/suppressions/someone@example.org", "suppressions:write")]
    public async Task A_key_without_the_scope_is_403_naming_it(string method, string path, string scope)
    {
        using var http = TestKeys.Client(_host.Port, TestKeys.MessagesOnly);
        using var response = await http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains($"error=\"insufficient_scope\", scope=\"{scope}\"", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(403, problem.GetProperty("status").GetInt32());
        Assert.Equal("urn:mailmesh:problem:insufficient-scope", problem.GetProperty("type").GetString());
        Assert.Equal(scope, problem.GetProperty("scope").GetString());
        Assert.Contains(scope, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_right_scope_is_answered()
    {
        using var status = TestKeys.Client(_host.Port, TestKeys.MessagesOnly);
        Assert.Equal(HttpStatusCode.NotFound, (await status.GetAsync(new Uri($"/api/v1/messages/{Guid.NewGuid()}", UriKind.Relative))).StatusCode);

        using var admin = TestKeys.Client(_host.Port, TestKeys.Admin);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri("/api/v1/queue", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync("/api/v1/suppressions/scoped@example.org", new { reason = "test" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri("/api/v1/suppressions/scoped@example.org", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri("/api/v1/suppressions", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync(new Uri("/api/v1/suppressions/scoped@example.org", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task Keys_made_through_the_admin_API_open_their_API_until_disabled_and_grant_no_more_than_their_maker_holds()
    {
        var name = "made-" + Guid.NewGuid().ToString("N")[..8];
        using var root = TestKeys.Client(_host.Port, TestKeys.Admin);
        using var created = await root.PostAsJsonAsync("/api/v1/admin/keys", new { name, kind = "admin", scopes = "messages:read keys:write" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var made = await created.Content.ReadFromJsonAsync<JsonElement>();
        var secret = made.GetProperty("key").GetString()!;
        Assert.StartsWith("mmk_", secret, StringComparison.Ordinal);

        // The new key opens what its scopes allow, and nothing else.
        using var newKey = TestKeys.Client(_host.Port, secret);
        Assert.Equal(HttpStatusCode.OK, (await newKey.GetAsync(new Uri("/api/v1/admin/messages", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await newKey.GetAsync(new Uri("/api/v1/admin/queue/summary", UriKind.Relative))).StatusCode);

        // keys:write hands on only what the maker holds.
        using (var escalation = await newKey.PostAsJsonAsync("/api/v1/admin/keys", new { name = name + "-x", kind = "admin", scopes = "messages:write" }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, escalation.StatusCode);
        }

        // Names are unique per kind, among configured keys too; bad input is a 400 with a reason.
        using (var taken = await root.PostAsJsonAsync("/api/v1/admin/keys", new { name = "operator", kind = "admin", scopes = "messages:read" }))
        {
            Assert.Equal(HttpStatusCode.Conflict, taken.StatusCode);
        }

        using (var again = await root.PostAsJsonAsync("/api/v1/admin/keys", new { name, kind = "admin", scopes = "messages:read" }))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        }

        using (var badScope = await root.PostAsJsonAsync("/api/v1/admin/keys", new { name = name + "-y", kind = "admin", scopes = "everything" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, badScope.StatusCode);
            Assert.Contains("'everything' is not a scope", await badScope.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // A submission key made here submits mail, within its sender domains; an admin key made here does not.
        using var submissionCreated = await root.PostAsJsonAsync("/api/v1/admin/keys", new { name, kind = "submission", senderDomains = "origin.test" });
        Assert.Equal(HttpStatusCode.Created, submissionCreated.StatusCode);
        var submissionSecret = (await submissionCreated.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
        using var app = TestKeys.Client(_host.Port, submissionSecret);
        using (var accepted = await app.PostAsJsonAsync("/api/v1/messages", new { from = "app@origin.test", to = new[] { "user@dest.test" }, subject = "x", text = "x" }))
        {
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        }

        using (var foreign = await app.PostAsJsonAsync("/api/v1/messages", new { from = "app@elsewhere.test", to = new[] { "user@dest.test" }, subject = "x", text = "x" }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
        }

        using (var adminSubmits = await newKey.PostAsJsonAsync("/api/v1/messages", new { from = "app@origin.test", to = new[] { "user@dest.test" }, subject = "x", text = "x" }))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, adminSubmits.StatusCode);
        }

        // The list shows both, never a secret or a hash; disabling closes the key at once and is idempotent.
        var list = await root.GetStringAsync(new Uri("/api/v1/admin/keys", UriKind.Relative));
        Assert.DoesNotContain(secret, list, StringComparison.Ordinal);
        Assert.DoesNotContain(made.GetProperty("hash").GetString()!, list, StringComparison.Ordinal);
        var listed = JsonDocument.Parse(list).RootElement.EnumerateArray().Where(k => k.GetProperty("name").GetString() == name).ToList();
        Assert.Equal(["admin", "submission"], listed.Select(k => k.GetProperty("kind").GetString()).Order());
        Assert.All(listed, k => Assert.Equal(("api", "operator"), (k.GetProperty("source").GetString(), k.GetProperty("createdBy").GetString())));

        using (var disabled = await root.PostAsync(new Uri($"/api/v1/admin/keys/admin/{name}/disable", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.OK, disabled.StatusCode);
            Assert.True((await disabled.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("changed").GetBoolean());
        }

        Assert.Equal(HttpStatusCode.Unauthorized, (await newKey.GetAsync(new Uri("/api/v1/admin/messages", UriKind.Relative))).StatusCode);
        using (var twice = await root.PostAsync(new Uri($"/api/v1/admin/keys/admin/{name}/disable", UriKind.Relative), null))
        {
            Assert.False((await twice.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("changed").GetBoolean());
        }

        Assert.Equal(HttpStatusCode.NotFound, (await root.PostAsync(new Uri("/api/v1/admin/keys/admin/operator/disable", UriKind.Relative), null)).StatusCode);
        var audit = await root.GetStringAsync(new Uri("/api/v1/admin/audit", UriKind.Relative));
        Assert.Contains($"admin key {name}", audit, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_admin_key_cannot_submit_mail()
    {
        using var http = TestKeys.Client(_host.Port, TestKeys.Admin);
        using var response = await http.PostAsJsonAsync(
            "/api/v1/messages", new { from = "app@origin.test", to = new[] { "user@dest.test" }, subject = "x", text = "x" });
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);

        using var submission = TestKeys.Client(_host.Port, TestKeys.Submission);
        using var accepted = await submission.PostAsJsonAsync(
            "/api/v1/messages", new { from = "app@origin.test", to = new[] { "user@dest.test" }, subject = "x", text = "x" });
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/metrics")]
    public async Task Probes_and_metrics_need_no_key(string path)
    {
        using var http = TestKeys.Client(_host.Port, key: null);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(path, UriKind.Relative))).StatusCode);
    }

    /// <summary>One Standalone process for the whole class (no mail is delivered: the destination does not resolve).</summary>
    public sealed class Host : IAsyncLifetime
    {
        private readonly DirectoryInfo _workingDirectory = Directory.CreateTempSubdirectory("mailmesh-admin-");
        private StandaloneProcess _process = null!;

        public int Port => _process.HttpPort;

        public async Task InitializeAsync()
        {
            var settings = new Dictionary<string, string>
            {
                ["Dns:Servers"] = "127.0.0.1:" + Testing.Infrastructure.LoopbackPort.Free().ToString(CultureInfo.InvariantCulture),
            };
            TestKeys.AddTo(settings);
            _process = await StandaloneProcess.StartAsync(_workingDirectory.FullName, settings);
        }

        public async Task DisposeAsync()
        {
            await _process.DisposeAsync();
            _workingDirectory.Delete(recursive: true);
        }
    }
}
