using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MailMesh.Contracts;
using MailMesh.Storage;
using MimeKit;

namespace MailMesh.Ingress.FunctionalTests.Http;

public sealed class HttpSubmissionTests
{
    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;

    private static readonly byte[] Pdf = [0x25, 0x50, 0x44, 0x46, 0x2D, 0x31, 0x2E, 0x37, 0x0A, 0x00, 0xFF, 0x80, 0x7F];

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static ByteArrayContent Raw(string message)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(message));
        content.Headers.ContentType = new MediaTypeHeaderValue("message/rfc822");
        return content;
    }

    private static object SimpleMessage(string to = "rcpt@example.org") => new { from = "sender@example.com", to = new[] { to }, subject = "Hi", text = "Hello" };

    private static async Task<(Guid Id, string[] Recipients)> AcceptedAsync(HttpResponseMessage response, HttpStatusCode expected = HttpStatusCode.Accepted)
    {
        var body = await response.Content.ReadAsStringAsync(Timeout);
        Assert.True(expected == response.StatusCode, $"{(int)response.StatusCode}: {body}");
        var json = JsonNode.Parse(body)!;
        var id = Guid.Parse(json["id"]!.GetValue<string>());
        Assert.Equal("/api/v1/messages/" + id, response.Headers.Location?.OriginalString);
        return (id, [.. json["recipients"]!.AsArray().Select(r => r!.GetValue<string>())]);
    }

    private static async Task<JsonNode> ProblemAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        var body = await response.Content.ReadAsStringAsync(Timeout);
        Assert.True(status == response.StatusCode, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonNode.Parse(body)!;
        Assert.Equal("urn:mailmesh:problem:" + type, problem["type"]!.GetValue<string>());
        Assert.Equal((int)status, problem["status"]!.GetValue<int>());
        Assert.False(string.IsNullOrWhiteSpace(problem["detail"]?.GetValue<string>()));
        return problem;
    }

    private static async Task<MimeMessage> StoredMimeAsync(HttpApiHost host, Guid id)
    {
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.NotNull(stored);
        return await MimeMessage.LoadAsync(new MemoryStream(stored.Content.ToArray()), Timeout);
    }

    private static void AssertCrlfOnly(ReadOnlySpan<byte> content)
    {
        for (var i = 0; i < content.Length; i++)
        {
            if (content[i] == '\n')
            {
                Assert.True(i > 0 && content[i - 1] == '\r', $"bare LF at {i}");
            }
            else if (content[i] == '\r')
            {
                Assert.True(i + 1 < content.Length && content[i + 1] == '\n', $"bare CR at {i}");
            }
        }
    }

    [Fact]
    public async Task Json_message_is_committed_with_headers_MIME_and_attachments_before_the_202()
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient();
        var response = await client.PostAsync("/api/v1/messages", Json(new
        {
            from = "Billing Team <billing@example.com>",
            to = new[] { "Ann Example <ann@example.org>", "bob@Example.NET" },
            cc = new[] { "carol@example.org" },
            bcc = new[] { "Dave Hidden <dave@example.net>" },
            replyTo = "support@example.com",
            subject = "Ihre Rechnung – März",
            text = "Grüße\nline two",
            html = "<p>Grüße</p>",
            headers = new Dictionary<string, string> { ["X-Campaign"] = "invoices-2026", ["List-Unsubscribe"] = "<mailto:unsub@example.com>" },
            attachments = new[] { new { filename = "invoice.pdf", contentType = "application/pdf", content = Convert.ToBase64String(Pdf) } },
        }), Timeout);
        var (id, recipients) = await AcceptedAsync(response);
        Assert.Equal(["ann@example.org", "bob@example.net", "carol@example.org", "dave@example.net"], recipients);

        // 202 means safe: the message is in the spool when the answer arrives.
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.NotNull(stored);
        Assert.Equal("billing@example.com", stored.Sender);
        Assert.Equal(MessageOrigin.Http, stored.Origin);
        Assert.Equal(HttpApiHost.KeyName, stored.AuthenticatedUser);
        Assert.Equal("127.0.0.1", stored.ClientAddress);
        Assert.Equal(BodyType.SevenBit, stored.BodyType);
        AssertCrlfOnly(stored.Content.Span);
        var text = Encoding.ASCII.GetString(stored.Content.Span);
        Assert.StartsWith("Received: from unknown ([127.0.0.1])\r\n\tby mx.test.example (MailMesh) with HTTP id " + id, text);
        var header = text[..text.IndexOf("\r\n\r\n", StringComparison.Ordinal)];
        Assert.DoesNotContain("dave", header, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("\nBcc:", header, StringComparison.OrdinalIgnoreCase);

        var status = await host.Spool.GetStatusAsync(id, Timeout);
        Assert.Equal(recipients.Order(), status!.Recipients.Select(r => r.Address).Order());

        var mime = await StoredMimeAsync(host, id);
        Assert.Equal("Billing Team", ((MailboxAddress)mime.From.Single()).Name);
        Assert.Equal(["ann@example.org", "bob@Example.NET"], mime.To.Mailboxes.Select(m => m.Address));
        Assert.Equal("carol@example.org", mime.Cc.Mailboxes.Single().Address);
        Assert.Empty(mime.Bcc);
        Assert.Equal("support@example.com", mime.ReplyTo.Mailboxes.Single().Address);
        Assert.Equal("Ihre Rechnung – März", mime.Subject);
        Assert.Equal(id + "@mx.test.example", mime.MessageId);
        Assert.True(Math.Abs((mime.Date - DateTimeOffset.UtcNow).TotalMinutes) < 10);
        Assert.Equal("invoices-2026", mime.Headers["X-Campaign"]);
        Assert.Equal("<mailto:unsub@example.com>", mime.Headers["List-Unsubscribe"]);
        Assert.Contains("\r\nContent-Type: multipart/alternative;", text, StringComparison.Ordinal);
        Assert.Equal("Grüße\nline two", mime.TextBody!.ReplaceLineEndings("\n").TrimEnd());
        Assert.Equal("<p>Grüße</p>", mime.HtmlBody!.Trim());
        var attachment = Assert.IsType<MimePart>(mime.Attachments.Single());
        Assert.Equal("invoice.pdf", attachment.FileName);
        Assert.True(attachment.ContentType.IsMimeType("application", "pdf"));
        using var decoded = new MemoryStream();
        await attachment.Content!.DecodeToAsync(decoded, Timeout);
        Assert.Equal(Pdf, decoded.ToArray());

        // Policy saw the API key as the authenticated user, for every recipient and for the message.
        Assert.Equal(4, host.Policy.Asked.OfType<CheckRecipient>().Count(c => c.AuthenticatedUser == HttpApiHost.KeyName && c.Sender == "billing@example.com"));
        Assert.Equal(HttpApiHost.KeyName, host.Policy.Asked.OfType<CheckMessage>().Single().AuthenticatedUser);

        var announced = await host.Announcements.First.WaitAsync(Timeout);
        Assert.Equal(id, announced.MessageId);
        Assert.Equal(4, announced.RecipientCount);
    }

    [Fact]
    public async Task Envelope_from_client_Date_and_Message_ID_are_honoured_and_duplicate_recipients_folded()
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient(HttpApiHost.OtherKey);
        var response = await client.PostAsync("/api/v1/messages", Json(new
        {
            from = "news@example.com",
            envelopeFrom = "bounces+123@example.com",
            to = "a@example.org, A@EXAMPLE.ORG",
            bcc = new[] { "a@example.org" },
            html = "<b>x</b>",
            headers = new Dictionary<string, string> { ["Date"] = "Tue, 1 Jul 2025 10:00:00 +0000", ["Message-ID"] = "<client-1@example.com>" },
        }), Timeout);
        var (id, recipients) = await AcceptedAsync(response);
        Assert.Equal(["a@example.org", "A@example.org"], recipients);
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.Equal("bounces+123@example.com", stored!.Sender);
        Assert.Equal(HttpApiHost.OtherKeyName, stored.AuthenticatedUser);
        var mime = await StoredMimeAsync(host, id);
        Assert.Equal("client-1@example.com", mime.MessageId);
        Assert.Equal(new DateTimeOffset(2025, 7, 1, 10, 0, 0, TimeSpan.Zero), mime.Date);
        Assert.Equal("<b>x</b>", mime.HtmlBody!.Trim());
    }

    [Fact]
    public async Task Raw_message_is_normalised_to_CRLF_its_Bcc_removed_and_Date_and_Message_ID_added()
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient();
        var raw = "From: Sender <sender@example.com>\nTo: one@example.org,\n two@example.net\nBcc: hidden@example.net\nSubject: raw\n\nline 1\rline 2\r\n";
        var (id, recipients) = await AcceptedAsync(await client.PostAsync("/api/v1/messages", Raw(raw), Timeout));
        Assert.Equal(["one@example.org", "two@example.net", "hidden@example.net"], recipients);

        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.Equal("sender@example.com", stored!.Sender);
        AssertCrlfOnly(stored.Content.Span);
        var text = Encoding.ASCII.GetString(stored.Content.Span);
        // No Bcc header line; the text as a whole may contain "bcc" (the message id in the Received header is hex).
        Assert.DoesNotContain(text.Split("\r\n"), line => line.StartsWith("Bcc:", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain("hidden", text, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("\r\nFrom: Sender <sender@example.com>\r\nTo: one@example.org,\r\n two@example.net\r\nSubject: raw\r\nDate: ", text);
        Assert.Contains("\r\nMessage-ID: <" + id + "@mx.test.example>\r\n\r\nline 1\r\nline 2\r\n", text);
        Assert.EndsWith("\r\n\r\nline 1\r\nline 2\r\n", text);
    }

    [Fact]
    public async Task Raw_message_envelope_comes_from_query_or_X_MailMesh_headers_and_content_is_kept()
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient();
        const string Raw8Bit = "Date: Tue, 1 Jul 2025 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\nFrom: a@example.com\r\nTo: list@example.org\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n";
        var (id, recipients) = await AcceptedAsync(await client.PostAsync("/api/v1/messages?from=bounce@example.com&to=x@example.org&to=y@example.org", Raw(Raw8Bit), Timeout));
        Assert.Equal(["x@example.org", "y@example.org"], recipients);
        var stored = await host.Spool.GetMessageAsync(id, Timeout);
        Assert.Equal("bounce@example.com", stored!.Sender);
        Assert.Equal(BodyType.EightBitMime, stored.BodyType);
        Assert.EndsWith("\r\n" + Raw8Bit, Encoding.UTF8.GetString(stored.Content.Span));

        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/messages") { Content = Raw("From: a@example.com\r\nTo: b@example.org\r\n\r\nx\r\n") };
        request.Headers.Add("X-MailMesh-From", "env@example.com");
        request.Headers.Add("X-MailMesh-To", "c@example.org, d@example.org");
        var (second, secondRecipients) = await AcceptedAsync(await client.SendAsync(request, Timeout));
        Assert.Equal(["c@example.org", "d@example.org"], secondRecipients);
        Assert.Equal("env@example.com", (await host.Spool.GetMessageAsync(second, Timeout))!.Sender);
    }

    [Theory]
    [InlineData(null, "Bearer realm=\"mailmesh\"")]
    [InlineData("Bearer not-a-key", "Bearer realm=\"mailmesh\", error=\"invalid_token\"")]
    [InlineData("Basic dXNlcjpwYXNz", "Bearer realm=\"mailmesh\", error=\"invalid_token\"")]
    public async Task Missing_or_wrong_API_key_is_401_with_WWW_Authenticate(string? authorization, string challenge)
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient(key: null);
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/messages") { Content = Json(SimpleMessage()) };
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        var response = await client.SendAsync(request, Timeout);
        await ProblemAsync(response, HttpStatusCode.Unauthorized, "unauthorized");
        Assert.StartsWith(challenge, response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Empty(host.Spool.Stored);
        Assert.Empty(host.Policy.Asked);
    }

    [Fact]
    public async Task Idempotency_key_replay_returns_the_same_id_and_stores_once()
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient();
        async Task<HttpResponseMessage> SendAsync(HttpClient c, object body, string key)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/messages") { Content = Json(body) };
            request.Headers.Add("Idempotency-Key", key);
            return await c.SendAsync(request, Timeout);
        }

        var first = await AcceptedAsync(await SendAsync(client, SimpleMessage(), "order-42"));
        var replay = await AcceptedAsync(await SendAsync(client, SimpleMessage(), "\"order-42\""), HttpStatusCode.OK);
        Assert.Equal(first.Id, replay.Id);
        Assert.Equal(first.Recipients, replay.Recipients);
        Assert.Single(host.Spool.Stored);
        Assert.Equal(1, (await host.Spool.CountByStateAsync(Timeout)).Values.Sum());

        // The same key with another envelope is a client bug: 409, nothing stored.
        var conflict = await ProblemAsync(await SendAsync(client, SimpleMessage("other@example.org"), "order-42"), HttpStatusCode.Conflict, "idempotency-key-reused");
        Assert.Equal(first.Id.ToString(), conflict["id"]!.GetValue<string>());

        // Keys are scoped per API key: another application's "order-42" is another message.
        using var other = host.CreateClient(HttpApiHost.OtherKey);
        var third = await AcceptedAsync(await SendAsync(other, SimpleMessage(), "order-42"));
        Assert.NotEqual(first.Id, third.Id);
        Assert.Equal(2, host.Spool.Stored.Count);
    }

    public static TheoryData<string, string, HttpStatusCode, string, string> BadRequests => new()
    {
        { "application/json", "{\"from\": \"a@example.com\", ", HttpStatusCode.BadRequest, "malformed-json", "not valid JSON" },
        { "application/json", "{\"from\": \"a@example.com\", \"from\": \"b@example.com\", \"to\": [\"c@example.org\"], \"text\": \"x\"}", HttpStatusCode.BadRequest, "malformed-json", "twice" },
        { "application/json", "[1]", HttpStatusCode.BadRequest, "invalid-request", "JSON object" },
        { "application/json", "{\"to\": [\"b@example.org\"], \"text\": \"x\"}", HttpStatusCode.BadRequest, "invalid-request", "/from: required" },
        { "application/json", "{\"from\": \"a@example.com\", \"text\": \"x\"}", HttpStatusCode.BadRequest, "invalid-request", "/to: at least one recipient" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\", \"not an address\"], \"text\": \"x\"}", HttpStatusCode.BadRequest, "invalid-request", "/to/1: 'not an address' is not an email address" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@[300.1.1.1]\"], \"text\": \"x\"}", HttpStatusCode.BadRequest, "invalid-request", "/to/0:" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"]}", HttpStatusCode.BadRequest, "invalid-request", "needs a body" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": 5, \"text\": \"x\"}", HttpStatusCode.BadRequest, "invalid-request", "/to: must be an array of addresses, not a number" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"x\", \"attachment\": []}", HttpStatusCode.BadRequest, "invalid-request", "unknown member 'attachment'" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"attachments\": [{\"filename\": \"a.bin\", \"content\": \"@@@not base64\"}]}", HttpStatusCode.BadRequest, "invalid-request", "/attachments/0/content: is not valid base64" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"attachments\": [{\"content\": \"AA==\"}]}", HttpStatusCode.BadRequest, "invalid-request", "/attachments/0/filename: required" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"x\", \"headers\": {\"Bcc\": \"spy@example.net\"}}", HttpStatusCode.BadRequest, "invalid-request", "/headers/Bcc: Bcc cannot be set" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"x\", \"headers\": {\"Content-Transfer-Encoding\": \"binary\"}}", HttpStatusCode.BadRequest, "invalid-request", "/headers/Content-Transfer-Encoding" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"x\", \"headers\": {\"Received\": \"from x\"}}", HttpStatusCode.BadRequest, "invalid-request", "/headers/Received" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"x\", \"headers\": {\"X-Tag\": \"a\\r\\nBcc: spy@example.net\"}}", HttpStatusCode.BadRequest, "invalid-request", "/headers/X-Tag: must not contain CR, LF" },
        { "application/json", "{\"from\": \"a@example.com\", \"to\": [\"b@example.org\"], \"text\": \"x\", \"headers\": {\"Date\": \"yesterday\"}}", HttpStatusCode.BadRequest, "invalid-request", "/headers/Date" },
        { "text/plain", "hello", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type", "application/json or message/rfc822" },
        { "application/json; charset=iso-8859-1", "{}", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type", "UTF-8" },
        { "message/rfc822", "To: b@example.org\r\n\r\nno from\r\n", HttpStatusCode.BadRequest, "invalid-message", "no From header field" },
        { "message/rfc822", "From a@example.com Tue Jul  1 10:00:00 2025\r\nFrom: a@example.com\r\n\r\nx\r\n", HttpStatusCode.BadRequest, "invalid-message", "first line is not a header field" },
        { "message/rfc822", "From: a@example.com\r\nSubject: no recipients\r\n\r\nx\r\n", HttpStatusCode.BadRequest, "invalid-request", "no recipients" },
        { "message/rfc822", "From: a@example.com\r\nTo: not an address\r\n\r\nx\r\n", HttpStatusCode.BadRequest, "invalid-request", "header To (in the message)" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Invalid_submissions_get_problem_details_and_nothing_is_stored(string contentType, string body, HttpStatusCode status, string type, string detail)
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient();
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        var response = await client.PostAsync("/api/v1/messages", content, Timeout);
        var problem = await ProblemAsync(response, status, type);
        Assert.Contains(detail, problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Empty(host.Spool.Stored);
        Assert.Empty(host.Policy.Asked);
        if (status == HttpStatusCode.UnsupportedMediaType && !contentType.Contains("charset", StringComparison.Ordinal))
        {
            Assert.Equal("application/json, message/rfc822", response.Headers.GetValues("Accept-Post").Single());
        }
    }

    [Fact]
    public async Task Malformed_Idempotency_Key_is_400()
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient();
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/messages") { Content = Json(SimpleMessage()) };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", new string('k', 300));
        await ProblemAsync(await client.SendAsync(request, Timeout), HttpStatusCode.BadRequest, "invalid-idempotency-key");
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task Too_many_recipients_is_400_before_Policy_is_asked()
    {
        await using var host = await HttpApiHost.StartAsync(new() { ["Ingress:MaxRecipients"] = "100" });
        using var client = host.CreateClient();
        var to = Enumerable.Range(0, 101).Select(i => $"r{i}@example.org").ToArray();
        var problem = await ProblemAsync(
            await client.PostAsync("/api/v1/messages", Json(new { from = "a@example.com", to, text = "x" }), Timeout),
            HttpStatusCode.BadRequest,
            "too-many-recipients");
        Assert.Equal(100, problem["limit"]!.GetValue<int>());
        Assert.Empty(host.Policy.Asked);
    }

    [Fact]
    public async Task Message_over_MaxMessageSize_is_413_for_raw_and_built_messages()
    {
        await using var host = await HttpApiHost.StartAsync(new() { ["Ingress:MaxMessageSize"] = "2048" });
        using var client = host.CreateClient();
        var raw = "From: a@example.com\r\nTo: b@example.org\r\n\r\n" + new string('x', 3000) + "\r\n";
        var problem = await ProblemAsync(await client.PostAsync("/api/v1/messages", Raw(raw), Timeout), HttpStatusCode.RequestEntityTooLarge, "message-too-large");
        Assert.Equal(2048, problem["limit"]!.GetValue<int>());

        var json = Json(new { from = "a@example.com", to = new[] { "b@example.org" }, text = new string('y', 3000) });
        await ProblemAsync(await client.PostAsync("/api/v1/messages", json, Timeout), HttpStatusCode.RequestEntityTooLarge, "message-too-large");
        Assert.Empty(host.Spool.Stored);

        var small = await client.PostAsync("/api/v1/messages", Json(SimpleMessage()), Timeout);
        await AcceptedAsync(small);
    }

    [Fact]
    public async Task Recipient_refused_by_Policy_refuses_the_whole_request_with_422_and_reasons()
    {
        await using var host = await HttpApiHost.StartAsync();
        host.Policy.Recipient = r => r.Recipient.StartsWith("blocked", StringComparison.Ordinal)
            ? new PolicyDecision { Accepted = false, ReplyCode = 550, EnhancedCode = "5.7.1", Reason = "Recipient is suppressed" }
            : PolicyDecision.Accept;
        using var client = host.CreateClient();
        var response = await client.PostAsync("/api/v1/messages", Json(new { from = "a@example.com", to = new[] { "ok@example.org", "blocked@example.org" }, text = "x" }), Timeout);
        var problem = await ProblemAsync(response, HttpStatusCode.UnprocessableEntity, "recipients-refused");
        var refused = problem["recipients"]!.AsArray().Single()!;
        Assert.Equal("blocked@example.org", refused["address"]!.GetValue<string>());
        Assert.Equal(550, refused["code"]!.GetValue<int>());
        Assert.Equal("5.7.1", refused["enhancedCode"]!.GetValue<string>());
        Assert.Equal("Recipient is suppressed", refused["text"]!.GetValue<string>());
        Assert.Empty(host.Spool.Stored);
        Assert.Empty(host.Policy.Asked.OfType<CheckMessage>());
    }

    [Fact]
    public async Task Transient_recipient_refusal_is_503_with_Retry_After()
    {
        await using var host = await HttpApiHost.StartAsync();
        host.Policy.Recipient = _ => new PolicyDecision { Accepted = false, ReplyCode = 452, EnhancedCode = "4.5.3", Reason = "Rate limit" };
        using var client = host.CreateClient();
        var response = await client.PostAsync("/api/v1/messages", Json(SimpleMessage()), Timeout);
        await ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "recipients-refused");
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter?.Delta);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task Message_refused_by_Policy_is_422_with_the_reply()
    {
        await using var host = await HttpApiHost.StartAsync();
        host.Policy.Message = _ => new PolicyDecision { Accepted = false, ReplyCode = 554, EnhancedCode = "5.7.1", Reason = "Content rejected" };
        using var client = host.CreateClient();
        var problem = await ProblemAsync(await client.PostAsync("/api/v1/messages", Json(SimpleMessage()), Timeout), HttpStatusCode.UnprocessableEntity, "message-refused");
        Assert.Equal(554, problem["reply"]!["code"]!.GetValue<int>());
        Assert.Contains("Content rejected", problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Empty(host.Spool.Stored);
    }

    [Theory]
    [InlineData("recipient")]
    [InlineData("message")]
    public async Task Policy_timeout_is_503_with_Retry_After_and_nothing_is_stored(string check)
    {
        await using var host = await HttpApiHost.StartAsync(new() { ["Ingress:PolicyTimeout"] = "00:00:00.300" });
        if (check == "recipient")
        {
            host.Policy.Recipient = _ => null;
        }
        else
        {
            host.Policy.Message = _ => null;
        }

        using var client = host.CreateClient();
        var response = await client.PostAsync("/api/v1/messages", Json(SimpleMessage()), Timeout);
        await ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "temporarily-unavailable");
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter?.Delta);
        Assert.Empty(host.Spool.Stored);
    }

    [Fact]
    public async Task Spool_failure_is_503_with_Retry_After()
    {
        await using var host = await HttpApiHost.StartAsync();
        host.Spool.BeforeStore = (_, _) => throw new IOException("disk full");
        using var client = host.CreateClient();
        var response = await client.PostAsync("/api/v1/messages", Json(SimpleMessage()), Timeout);
        var problem = await ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "temporarily-unavailable");
        Assert.Contains("spool", problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter?.Delta);
        Assert.Equal(0, (await host.Spool.CountByStateAsync(Timeout)).Values.Sum());
    }

    [Fact]
    public async Task Inline_parts_with_a_Content_ID_make_multipart_related_and_IDN_domains_become_A_labels()
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient();
        var response = await client.PostAsync("/api/v1/messages", Json(new
        {
            from = "news@example.com",
            to = new[] { "Jürgen <j@bücher.example>" },
            html = "<img src=\"cid:logo\">",
            attachments = new[] { new { filename = "logo.png", contentType = "image/png", content = Convert.ToBase64String(Pdf), contentId = "logo" } },
        }), Timeout);
        var (id, recipients) = await AcceptedAsync(response);
        Assert.Equal(["j@xn--bcher-kva.example"], recipients);
        var mime = await StoredMimeAsync(host, id);
        var related = Assert.IsType<MultipartRelated>(mime.Body);
        var logo = Assert.IsType<MimePart>(related.Single(p => p.ContentId == "logo"));
        Assert.True(logo.ContentType.IsMimeType("image", "png"));
        Assert.Equal("Jürgen", mime.To.Mailboxes.Single().Name);
        Assert.True(Encoding.ASCII.GetString((await host.Spool.GetMessageAsync(id, Timeout))!.Content.Span).Contains("xn--bcher-kva.example", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Ingress:Api:Keys:0:Hash", "not-hex", "Ingress:Api:Keys:0:Hash: must be the SHA-256 of the key as 64 hexadecimal digits")]
    [InlineData("Ingress:Api:Keys:1:Name", "billing-app", "Ingress:Api:Keys:1:Name: 'billing-app' is used by another key")]
    [InlineData("Ingress:Api:Keys:0:Name", "has space", "Ingress:Api:Keys:0:Name: required")]
    [InlineData("Ingress:Api:RetryAfter", "00:00:00", "Ingress:Api:RetryAfter: must be between 1 second and 1 hour")]
    public async Task Invalid_API_options_stop_start_up_naming_the_key(string key, string value, string expected)
    {
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => HttpApiHost.StartAsync(new() { [key] = value }));
        Assert.True(MailMesh.ServiceDefaults.ConfigurationErrors.TryDescribe(failure, out var message), failure.ToString());
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_requests_with_one_Idempotency_Key_store_once_and_both_get_the_id()
    {
        await using var host = await HttpApiHost.StartAsync();

        // Hold both commits until both requests are past their replay lookup: the spool's "same id twice is a no-op"
        // must decide, and the loser must still answer 200 with the id.
        var arrived = 0;
        var both = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        host.Spool.BeforeStore = async (_, ct) =>
        {
            if (Interlocked.Increment(ref arrived) == 2)
            {
                both.TrySetResult();
            }

            await both.Task.WaitAsync(ct);
        };
        using var client = host.CreateClient();
        Task<HttpResponseMessage> SendAsync()
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/messages") { Content = Json(SimpleMessage()) };
            request.Headers.Add("Idempotency-Key", "race-1");
            return client.SendAsync(request, Timeout);
        }

        var responses = await Task.WhenAll(SendAsync(), SendAsync());
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.Accepted], responses.Select(r => r.StatusCode).Order());
        var ids = await Task.WhenAll(responses.Select(r => AcceptedAsync(r, r.StatusCode)));
        Assert.Equal(ids[0].Id, ids[1].Id);
        Assert.Equal(1, (await host.Spool.CountByStateAsync(Timeout)).Values.Sum());
        await host.Announcements.First.WaitAsync(Timeout);
        Assert.Single(host.Announcements.Received);
    }

    [Fact]
    public async Task Compressed_body_is_415_naming_the_acceptable_coding()
    {
        await using var host = await HttpApiHost.StartAsync();
        using var client = host.CreateClient();
        var content = Json(SimpleMessage());
        content.Headers.ContentEncoding.Add("gzip");
        var response = await client.PostAsync("/api/v1/messages", content, Timeout);
        await ProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        Assert.Equal("identity", response.Headers.GetValues("Accept-Encoding").Single());
    }
}
