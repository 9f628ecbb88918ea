using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailMesh.ServiceDefaults.Security;
using MimeKit;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// SMTP AUTH users made through the admin API (issue 12) against a running standalone: a user made by the API
/// authenticates (PLAIN and LOGIN over STARTTLS) and submits within its sender domains, is refused once disabled and
/// again accepted once enabled; a reset password replaces the old one; configured users cannot be touched; every change
/// is audited with the acting key, or with the person a key holding audit:act-as names in X-MailMesh-Actor.
/// </summary>
public sealed class SmtpUserAdminTests : IAsyncLifetime
{
    /// <summary>An admin key that may act for a person (like the admin UI's).</summary>
    private const string UiKey = "mmk_test-ui-act-as";

    /// <summary>An admin key that may manage users but not act for anyone.</summary>
    private const string PlainKey = "mmk_test-users-only";

    /// <summary>The password of the admin UI account "ada".</summary>
    private const string UiPassword = "ui-account-password";

    /// <summary>Ingress's host name: the subject of its self-signed certificate.</summary>
    private const string HostName = "mx.smtpusers.test";

    private readonly RelayBench _bench = new("mailmesh-smtpusers-");
    private StandaloneProcess _mailmesh = null!;

    public async Task InitializeAsync()
    {
        _bench.Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
        foreach (var senderDomain in new[] { "origin.test", "mail.origin.test", "elsewhere.test", "anywhere.test" })
        {
            _bench.Dns.AddMx(senderDomain, 10, "mx.dest.test");
        }
        var settings = _bench.Settings();
        settings["Ingress:HostName"] = HostName;
        settings["Ingress:Auth:Users:0:Name"] = "configured-user";
        settings["Ingress:Auth:Users:0:PasswordHash"] = PasswordHash.Create("configured-pw", PasswordHash.MinIterations);
        settings["Ingress:Auth:FailureDelay"] = "00:00:00";
        settings["Ingress:Auth:MaxFailureDelay"] = "00:00:00";
        settings["Ingress:Auth:MaxFailures"] = "1000";
        settings["Admin:Users:0:Name"] = "ada";
        settings["Admin:Users:0:PasswordHash"] = PasswordHash.Create(UiPassword, PasswordHash.MinIterations);
        settings["Admin:Users:0:Role"] = "admin";
        settings["Admin:ApiKeys:2:Name"] = "admin-ui";
        settings["Admin:ApiKeys:2:Hash"] = ApiKeys.Hash(UiKey);
        settings["Admin:ApiKeys:2:Scopes"] = "users:read users:write audit:act-as";
        settings["Admin:ApiKeys:3:Name"] = "users-tool";
        settings["Admin:ApiKeys:3:Hash"] = ApiKeys.Hash(PlainKey);
        settings["Admin:ApiKeys:3:Scopes"] = "users:read users:write";
        _mailmesh = await StandaloneProcess.StartAsync(_bench.WorkingDirectory.FullName, settings);
    }

    public async Task DisposeAsync()
    {
        await _mailmesh.DisposeAsync();
        await _bench.DisposeAsync();
    }

    private HttpClient Admin() => TestKeys.Client(_mailmesh.HttpPort, TestKeys.Admin);

    [Fact]
    public async Task A_user_made_through_the_api_authenticates_and_submits_until_disabled_and_again_once_enabled()
    {
        using var http = Admin();
        using (var created = await http.PostAsJsonAsync("/api/v1/admin/smtp-users", new { name = "app-user", password = "first-password", senderDomains = "Origin.test" }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var body = await created.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(JsonValueKind.Null, body.GetProperty("password").ValueKind);
            Assert.Equal("origin.test", body.GetProperty("senderDomains").GetString());
            Assert.Equal("operator", body.GetProperty("createdBy").GetString());
        }

        Assert.Equal(250, await SubmitAsync("app-user", "first-password", "PLAIN", "app@origin.test"));
        Assert.Equal(250, await SubmitAsync("app-user", "first-password", "LOGIN", "app@mail.origin.test"));
        var delivered = await _bench.Sink.WaitForMessagesAsync(2, TimeSpan.FromSeconds(60));
        Assert.All(delivered, m => Assert.Equal(["user@dest.test"], m.Recipients));

        // Its sender domains hold: another From domain is refused at the end of data.
        Assert.Equal(550, await SubmitAsync("app-user", "first-password", "PLAIN", "app@elsewhere.test"));
        Assert.Equal(535, await SubmitAsync("app-user", "wrong-password", "PLAIN", "app@origin.test"));

        using (var disabled = await http.PostAsync(new Uri("/api/v1/admin/smtp-users/APP-USER/disable", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.OK, disabled.StatusCode);
            var body = await disabled.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(("app-user", false, true), (body.GetProperty("name").GetString(), body.GetProperty("enabled").GetBoolean(), body.GetProperty("changed").GetBoolean()));
        }

        Assert.Equal(535, await SubmitAsync("app-user", "first-password", "PLAIN", "app@origin.test"));
        Assert.Equal(535, await SubmitAsync("app-user", "first-password", "LOGIN", "app@origin.test"));
        using (var again = await http.PostAsync(new Uri("/api/v1/admin/smtp-users/app-user/disable", UriKind.Relative), null))
        {
            Assert.False((await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("changed").GetBoolean());
        }

        var list = await http.GetStringAsync(new Uri("/api/v1/admin/smtp-users", UriKind.Relative));
        Assert.DoesNotContain("pbkdf2", list, StringComparison.Ordinal);
        Assert.DoesNotContain("first-password", list, StringComparison.Ordinal);
        using (var users = JsonDocument.Parse(list))
        {
            var byName = users.RootElement.EnumerateArray().ToDictionary(u => u.GetProperty("name").GetString()!);
            Assert.Equal(("configuration", true), (byName["configured-user"].GetProperty("source").GetString(), byName["configured-user"].GetProperty("enabled").GetBoolean()));
            var app = byName["app-user"];
            Assert.Equal(("api", false, "operator"), (app.GetProperty("source").GetString(), app.GetProperty("enabled").GetBoolean(), app.GetProperty("disabledBy").GetString()));
        }

        using (var enabled = await http.PostAsync(new Uri("/api/v1/admin/smtp-users/app-user/enable", UriKind.Relative), null))
        {
            Assert.True((await enabled.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("changed").GetBoolean());
        }

        Assert.Equal(250, await SubmitAsync("app-user", "first-password", "PLAIN", "app@origin.test"));

        // A reset without a password generates one, returned this once; the old password stops working.
        string generated;
        using (var reset = await http.PostAsJsonAsync("/api/v1/admin/smtp-users/app-user/password", new { }))
        {
            Assert.Equal(HttpStatusCode.OK, reset.StatusCode);
            generated = (await reset.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("password").GetString()!;
        }

        Assert.True(generated.Length >= 20);
        Assert.Equal(535, await SubmitAsync("app-user", "first-password", "PLAIN", "app@origin.test"));
        Assert.Equal(250, await SubmitAsync("app-user", generated, "PLAIN", "app@origin.test"));
        using (var given = await http.PostAsJsonAsync("/api/v1/admin/smtp-users/app-user/password", new { password = "second-password" }))
        {
            Assert.Equal(JsonValueKind.Null, (await given.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("password").ValueKind);
        }

        Assert.Equal(250, await SubmitAsync("app-user", "second-password", "LOGIN", "app@origin.test"));

        var audit = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/audit");
        var rows = audit.GetProperty("items").EnumerateArray()
            .Select(a => (a.GetProperty("action").GetString(), a.GetProperty("actor").GetString(), a.GetProperty("target").GetString())).Reverse().ToList();
        Assert.Equal(
            [
                ("smtp-user.create", "operator", "smtp user app-user"), ("smtp-user.disable", "operator", "smtp user app-user"),
                ("smtp-user.enable", "operator", "smtp user app-user"), ("smtp-user.password", "operator", "smtp user app-user"),
                ("smtp-user.password", "operator", "smtp user app-user"),
            ],
            rows);
    }

    [Fact]
    public async Task A_generated_password_is_returned_once_and_bad_requests_are_refused_with_reasons()
    {
        using var http = Admin();
        string password;
        using (var created = await http.PostAsJsonAsync("/api/v1/admin/smtp-users", new { name = "generated-user" }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            password = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("password").GetString()!;
        }

        Assert.Equal(250, await SubmitAsync("generated-user", password, "PLAIN", "anyone@anywhere.test"));
        Assert.DoesNotContain(password, await http.GetStringAsync(new Uri("/api/v1/admin/smtp-users", UriKind.Relative)), StringComparison.Ordinal);

        await AssertProblemAsync(http, "/api/v1/admin/smtp-users", new { name = "Configured-User", password = "long-enough" }, HttpStatusCode.Conflict, "configuration");
        await AssertProblemAsync(http, "/api/v1/admin/smtp-users", new { name = "GENERATED-user" }, HttpStatusCode.Conflict, "already exists");
        await AssertProblemAsync(http, "/api/v1/admin/smtp-users", new { name = "bad name!" }, HttpStatusCode.BadRequest, "name");
        await AssertProblemAsync(http, "/api/v1/admin/smtp-users", new { name = "short", password = "short" }, HttpStatusCode.BadRequest, "password");
        await AssertProblemAsync(http, "/api/v1/admin/smtp-users", new { name = "domains", senderDomains = "not a domain!" }, HttpStatusCode.BadRequest, "senderDomains");
        await AssertProblemAsync(http, "/api/v1/admin/smtp-users/configured-user/disable", null, HttpStatusCode.Conflict, "Ingress:Auth:Users");
        await AssertProblemAsync(http, "/api/v1/admin/smtp-users/configured-user/password", new { }, HttpStatusCode.Conflict, "Ingress:Auth:Users");
        await AssertProblemAsync(http, "/api/v1/admin/smtp-users/nobody/enable", null, HttpStatusCode.NotFound, "nobody");
        Assert.Equal(250, await SubmitAsync("configured-user", "configured-pw", "PLAIN", "anyone@anywhere.test"));

        using var reader = TestKeys.Client(_mailmesh.HttpPort, TestKeys.MessagesOnly);
        using var forbidden = await reader.PostAsJsonAsync("/api/v1/admin/smtp-users", new { name = "sneaky" });
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Contains("users:write", await forbidden.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_actor_header_is_recorded_only_from_a_key_holding_audit_act_as()
    {
        using (var ui = TestKeys.Client(_mailmesh.HttpPort, UiKey))
        {
            ui.DefaultRequestHeaders.Add(AdminActor.HeaderName, "alice");
            using var created = await ui.PostAsJsonAsync("/api/v1/admin/smtp-users", new { name = "by-alice" });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal("alice (via admin-ui)", (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("createdBy").GetString());
        }

        using (var tool = TestKeys.Client(_mailmesh.HttpPort, PlainKey))
        {
            tool.DefaultRequestHeaders.Add(AdminActor.HeaderName, "mallory");
            using var disabled = await tool.PostAsync(new Uri("/api/v1/admin/smtp-users/by-alice/disable", UriKind.Relative), null);
            Assert.Equal(HttpStatusCode.OK, disabled.StatusCode);
        }

        using (var bad = TestKeys.Client(_mailmesh.HttpPort, UiKey))
        {
            bad.DefaultRequestHeaders.Add(AdminActor.HeaderName, "alice (via somebody)");
            using var refused = await bad.PostAsync(new Uri("/api/v1/admin/smtp-users/by-alice/enable", UriKind.Relative), null);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Contains(AdminActor.HeaderName, await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using var http = Admin();
        var audit = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/audit");
        var rows = audit.GetProperty("items").EnumerateArray().Select(a => (a.GetProperty("action").GetString(), a.GetProperty("actor").GetString())).Reverse().ToList();
        Assert.Equal([("smtp-user.create", "alice (via admin-ui)"), ("smtp-user.disable", "users-tool")], rows);
        var user = (await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/smtp-users")).EnumerateArray().Single(u => u.GetProperty("name").GetString() == "by-alice");
        Assert.Equal(("alice (via admin-ui)", "users-tool"), (user.GetProperty("createdBy").GetString(), user.GetProperty("disabledBy").GetString()));
    }

    [Fact]
    public async Task Cli_makes_lists_disables_enables_and_resets_an_smtp_user()
    {
        var made = await RunCliAsync(["users", "smtp", "create", "cli-user", "--sender-domains", "origin.test", "--json"]);
        Assert.True(made.ExitCode == 0, made.Output);
        string password;
        using (var created = JsonDocument.Parse(made.Stdout))
        {
            password = created.RootElement.GetProperty("password").GetString()!;
        }

        Assert.Equal(250, await SubmitAsync("cli-user", password, "PLAIN", "app@origin.test"));

        var list = await RunCliAsync(["users", "smtp"]);
        Assert.True(list.ExitCode == 0, list.Output);
        Assert.Contains("cli-user", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("configured-user", list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(password, list.Stdout, StringComparison.Ordinal);

        // Destructive: asks first; no answer is no.
        var unconfirmed = await RunCliAsync(["users", "smtp", "disable", "cli-user"]);
        Assert.Equal(6, unconfirmed.ExitCode);
        Assert.Equal(250, await SubmitAsync("cli-user", password, "PLAIN", "app@origin.test"));

        var disabled = await RunCliAsync(["users", "smtp", "disable", "cli-user", "--yes"]);
        Assert.True(disabled.ExitCode == 0, disabled.Output);
        Assert.Contains("SMTP user cli-user disabled.", disabled.Stdout, StringComparison.Ordinal);
        Assert.Equal(535, await SubmitAsync("cli-user", password, "PLAIN", "app@origin.test"));

        var enabled = await RunCliAsync(["users", "smtp", "enable", "cli-user"]);
        Assert.True(enabled.ExitCode == 0, enabled.Output);
        var reset = await RunCliAsync(["users", "smtp", "password", "cli-user", "--password-stdin"], stdin: "a-new-password\n");
        Assert.True(reset.ExitCode == 0, reset.Output);
        Assert.DoesNotContain("a-new-password", reset.Output, StringComparison.Ordinal);
        Assert.Equal(535, await SubmitAsync("cli-user", password, "PLAIN", "app@origin.test"));
        Assert.Equal(250, await SubmitAsync("cli-user", "a-new-password", "LOGIN", "app@origin.test"));

        Assert.Equal(1, (await RunCliAsync(["users", "smtp", "create", "CLI-USER"])).ExitCode);
        Assert.Equal(1, (await RunCliAsync(["users", "smtp", "disable", "configured-user", "--yes"])).ExitCode);
        Assert.Equal(2, (await RunCliAsync(["users", "smtp", "enable", "nobody"])).ExitCode);
        Assert.Equal(1, (await RunCliAsync(["users", "smtp", "create"])).ExitCode);
    }

    [Fact]
    public async Task The_admin_ui_makes_and_disables_a_user_and_the_audit_names_the_person_through_the_uis_key()
    {
        using var ui = new HttpClient(new HttpClientHandler { CookieContainer = new System.Net.CookieContainer() })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{_mailmesh.HttpPort}"),
        };
        using (var login = await PostFormAsync(ui, "/admin/login", "login", new() { ["Name"] = "ada", ["Password"] = UiPassword }))
        {
            Assert.Equal(HttpStatusCode.OK, login.StatusCode);
            Assert.Contains("ada", await login.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        string page;
        using (var created = await PostFormAsync(ui, "/admin/access", "smtp-user-create", new() { ["NewName"] = "ui-made", ["NewDomains"] = "origin.test" }))
        {
            page = await created.Content.ReadAsStringAsync();
        }

        Assert.Contains("SMTP user ui-made made.", page, StringComparison.Ordinal);
        var password = System.Text.RegularExpressions.Regex.Match(page, "shown only now: <code>([^<]+)</code>").Groups[1].Value;
        Assert.Equal(250, await SubmitAsync("ui-made", password, "PLAIN", "app@origin.test"));

        using (var disabled = await PostFormAsync(ui, "/admin/access", "smtp-user-state", new() { ["StateName"] = "ui-made", ["StateEnable"] = "false" }))
        {
            Assert.Contains("SMTP user ui-made disabled.", await disabled.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(535, await SubmitAsync("ui-made", password, "PLAIN", "app@origin.test"));
        using var http = Admin();
        var audit = await http.GetFromJsonAsync<JsonElement>("/api/v1/admin/audit");
        var rows = audit.GetProperty("items").EnumerateArray().Select(a => (a.GetProperty("action").GetString(), a.GetProperty("actor").GetString())).Reverse().ToList();
        Assert.Equal([("smtp-user.create", "ada (via admin-ui-standalone)"), ("smtp-user.disable", "ada (via admin-ui-standalone)")], rows);
    }

    /// <summary>Posts a form of a UI page as a browser would: first GETs the page for its antiforgery token.</summary>
    private static async Task<HttpResponseMessage> PostFormAsync(HttpClient ui, string path, string handler, Dictionary<string, string> fields)
    {
        var html = await ui.GetStringAsync(new Uri(path, UriKind.Relative));
        var token = System.Text.RegularExpressions.Regex.Match(html, "<input[^>]*name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"");
        Assert.True(token.Success, "no antiforgery token on " + path);
        fields["_handler"] = handler;
        fields["__RequestVerificationToken"] = System.Net.WebUtility.HtmlDecode(token.Groups[1].Value);
        return await ui.PostAsync(new Uri(path, UriKind.Relative), new FormUrlEncodedContent(fields));
    }

    private Task<CliResult> RunCliAsync(IReadOnlyList<string> args, string? stdin = null) =>
        CliProcess.RunAsync(args, new Dictionary<string, string?>
        {
            ["MAILMESH_URL"] = $"http://127.0.0.1:{_mailmesh.HttpPort}",
            ["MAILMESH_API_KEY"] = TestKeys.Admin,
            ["MAILMESH_CLI_CONFIG"] = Path.Combine(_bench.WorkingDirectory.FullName, "no-such-cli.json"),
        }, stdin);

    private static async Task AssertProblemAsync(HttpClient http, string path, object? body, HttpStatusCode status, string detail)
    {
        using var response = body is null ? await http.PostAsync(new Uri(path, UriKind.Relative), null) : await http.PostAsJsonAsync(path, body);
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    /// <summary>
    /// STARTTLS, AUTH with <paramref name="mechanism"/> only, then one message from <paramref name="from"/>: 250 when
    /// accepted, else the reply code that refused the AUTH (535) or the message (550).
    /// </summary>
    private async Task<int> SubmitAsync(string user, string password, string mechanism, string from)
    {
        using var client = new SmtpClient();
        client.ServerCertificateValidationCallback = (_, certificate, _, _) => certificate?.Subject == "CN=" + HostName;
        await client.ConnectAsync("127.0.0.1", _mailmesh.SmtpPort, SecureSocketOptions.StartTls);
        client.AuthenticationMechanisms.RemoveWhere(m => m != mechanism);
        try
        {
            await client.AuthenticateAsync(new NetworkCredential(user, password));
        }
        catch (AuthenticationException)
        {
            return 535;
        }

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse("user@dest.test"));
        message.Subject = "from " + user;
        message.Body = new TextPart("plain") { Text = "submitted with AUTH\r\n" };
        try
        {
            await client.SendAsync(message);
            return 250;
        }
        catch (SmtpCommandException e)
        {
            return (int)e.StatusCode;
        }
        finally
        {
            await client.DisconnectAsync(quit: true);
        }
    }
}
