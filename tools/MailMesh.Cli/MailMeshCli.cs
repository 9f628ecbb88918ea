using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MailMesh.Cli;

/// <summary>The <c>mailmesh</c> commands. Each talks to the admin API only (docs/operations.md has examples).</summary>
internal sealed class MailMeshCli(TextReader input, TextWriter output, TextWriter error, IReadOnlyDictionary<string, string?> environment)
{
    public const string Usage =
        """
        mailmesh: the MailMesh admin command line (over the admin API).

        Usage: mailmesh [--url URL] [--key KEY] [--json] <command> ...

          queue [--domains N]                     pending recipients by destination and age (like qshape)
          message list [FILTER] [--limit N] [--cursor C]
          message show <id> [--raw]               envelope, headers, attempts, events (--raw: the message itself)
          message retry|hold|release|bounce|delete <id>... [--reason TEXT]
          message retry|hold|release|bounce|delete FILTER [--yes] [--reason TEXT]
                                                  every message matching FILTER (asks first unless --yes)
          suppress list [--prefix P] [--domain D] [--source S] [--limit N] [--cursor C]
          suppress add <address> [--reason TEXT] [--expires TIME]
          suppress remove <address>
          suppress import <file.csv|->            lines: address[,reason[,created_at,source,expires_at]]
          suppress export [file.csv|-]
          keys [list]                             every API key, admin and submission (configured and made here)
          keys create <name> --kind admin --scopes "S S"
          keys create <name> --kind submission [--sender-domains D,D]
                                                  prints the new key's secret, once
          keys disable admin|submission <name>    a key made with "keys create"
          users [list] [--after ADDRESS] [--limit N]
          users add <address> [--password P] [--quota BYTES]
          users disable|enable <address>         mailbox accounts
          users smtp [list]                       SMTP AUTH accounts (configured, and made with "users smtp create")
          users smtp create <name> [--sender-domains D,D] [--password-stdin]
                                                  without --password-stdin a password is generated and printed, once
          users smtp disable <name> [--yes]       the account can no longer AUTH (asks first unless --yes)
          users smtp enable <name>
          users smtp password <name> [--password-stdin] [--yes]
                                                  a new password (generated unless --password-stdin; asks first)
          audit [--limit N] [--before ID]         who did which admin action
          webhooks [list]                         webhook endpoints (configured and made here; never a secret)
          webhooks add <url> [--events E,E] [--secret S] [--disabled]
                                                  without --secret one is generated and printed, once
          webhooks update <id> [--set-url U] [--events E,E|all] [--secret S|--rotate-secret]
          webhooks disable|enable|remove <id>
          webhooks history <id> [--limit N] [--before ID]
                                                  every POST to the endpoint, newest first
          webhooks test <id>                      send a test event now; exit 4 when the receiver did not take it

        FILTER: --domain D --sender S --recipient R --state S[,S] --class C[,C] --from TIME --to TIME
                (--all-messages: no filter)
        States: queued in_flight deferred held delivered bounced expired suppressed
        Classes: the bounce class of a recipient's last attempt (InvalidRecipient, Throttled, ...; docs/delivery.md)

        The URL and key come from --url/--key, else MAILMESH_URL/MAILMESH_API_KEY, else ~/.config/mailmesh/cli.json
        ({"url": "...", "key": "..."}). Exit codes: 0 ok, 1 usage or invalid request, 2 not found, 3 authentication or
        scope, 4 server error, 5 server unreachable, 6 bulk or destructive action not confirmed.
        """;

    private static readonly string[] FilterOptions = ["domain", "sender", "recipient", "state", "class", "from", "to"];
    private static readonly HashSet<string> Actions = new(StringComparer.Ordinal) { "retry", "hold", "release", "bounce", "delete" };

    private bool _json;

    public async Task<int> RunAsync(IReadOnlyList<string> argv, CancellationToken cancellationToken)
    {
        try
        {
            var args = Arguments.Parse(argv);
            _json = args.Flag("json");
            if (args.Flag("help") || args.Positionals.Count == 0)
            {
                args.Option("url");
                args.Option("key");
                (args.Positionals.Count == 0 && !args.Flag("help") ? error : output).WriteLine(Usage);
                return args.Positionals.Count == 0 && !args.Flag("help") ? ExitCodes.Usage : ExitCodes.Ok;
            }

            var settings = CliSettings.Resolve(args, environment);
            using var client = new AdminClient(settings);
            var command = args.Positionals[0];
            var rest = args.Positionals.Skip(1).ToList();
            return command switch
            {
                "queue" => await QueueAsync(client, args, cancellationToken),
                "message" or "messages" => await MessageAsync(client, args, rest, cancellationToken),
                "suppress" or "suppressions" => await SuppressAsync(client, args, rest, cancellationToken),
                "keys" => await KeysAsync(client, args, rest, cancellationToken),
                "users" => await UsersAsync(client, args, rest, cancellationToken),
                "audit" => await AuditAsync(client, args, cancellationToken),
                "webhooks" or "webhook" => await WebhooksAsync(client, args, rest, cancellationToken),
                _ => throw new CliException(ExitCodes.Usage, $"Unknown command '{command}'. See 'mailmesh --help'."),
            };
        }
        catch (CliException e)
        {
            error.WriteLine("mailmesh: " + e.Message);
            return e.ExitCode;
        }
    }

    private async Task<int> QueueAsync(AdminClient client, Arguments args, CancellationToken cancellationToken)
    {
        var domains = args.IntOption("domains") ?? 50;
        args.EnsureAllRead();
        var summary = await client.GetAsync($"/api/v1/admin/queue/summary?domains={domains}", cancellationToken);
        if (_json)
        {
            Output.WriteJson(output, summary);
            return ExitCodes.Ok;
        }

        var buckets = summary.GetProperty("ageBuckets").EnumerateArray().Select(b => b.GetString()!).ToList();
        var headers = new List<string> { "domain", "total" };
        headers.AddRange(buckets);
        headers.AddRange(["held", "deferred", "oldest"]);
        IReadOnlyList<string> Row(JsonElement row, string name)
        {
            var cells = new List<string> { name, row.GetProperty("total").GetInt64().ToString(CultureInfo.InvariantCulture) };
            cells.AddRange(row.GetProperty("byAge").EnumerateArray().Select(a => a.GetInt64().ToString(CultureInfo.InvariantCulture)));
            var byState = row.GetProperty("byState");
            cells.Add(byState.TryGetProperty("held", out var held) ? held.GetInt64().ToString(CultureInfo.InvariantCulture) : "0");
            cells.Add(byState.TryGetProperty("deferred", out var deferred) ? deferred.GetInt64().ToString(CultureInfo.InvariantCulture) : "0");
            cells.Add(row.GetProperty("total").GetInt64() == 0 ? "-" : Output.Age(row.GetProperty("oldestAgeSeconds").GetDouble()));
            return cells;
        }

        var rows = new List<IReadOnlyList<string>> { Row(summary.GetProperty("total"), "TOTAL") };
        rows.AddRange(summary.GetProperty("domains").EnumerateArray().Select(d => Row(d, d.GetProperty("domain").GetString()!)));
        Output.WriteTable(output, headers, rows, Enumerable.Range(1, headers.Count - 1).ToHashSet());
        var count = summary.GetProperty("domainCount").GetInt32();
        if (count > rows.Count - 1)
        {
            output.WriteLine($"({count - (rows.Count - 1)} more domains; --domains N shows more)");
        }

        return ExitCodes.Ok;
    }

    private async Task<int> MessageAsync(AdminClient client, Arguments args, List<string> rest, CancellationToken cancellationToken)
    {
        var sub = rest.Count > 0 ? rest[0] : throw new CliException(ExitCodes.Usage, "message needs a subcommand: list, show, retry, hold, release, bounce, delete.");
        var ids = rest.Skip(1).ToList();
        if (sub == "list")
        {
            var query = FilterQuery(args);
            var limit = args.IntOption("limit") ?? 50;
            var cursor = args.Option("cursor");
            args.EnsureAllRead();
            query.Add("limit=" + limit.ToString(CultureInfo.InvariantCulture));
            if (cursor is not null)
            {
                query.Add("cursor=" + Uri.EscapeDataString(cursor));
            }

            var page = await client.GetAsync("/api/v1/admin/messages?" + string.Join('&', query), cancellationToken);
            if (_json)
            {
                Output.WriteJson(output, page);
                return ExitCodes.Ok;
            }

            Output.WriteTable(output, ["id", "received", "sender", "recipients", "states"], page.GetProperty("items").EnumerateArray().Select(m => (IReadOnlyList<string>)
            [
                Output.Str(m, "id"),
                m.GetProperty("receivedAt").GetDateTimeOffset().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
                Output.Str(m, "sender") is { Length: > 0 } s ? s : "<>",
                m.GetProperty("recipients").GetInt32() == 1 ? Output.Str(m, "firstRecipient") : $"{Output.Str(m, "firstRecipient")} +{m.GetProperty("recipients").GetInt32() - 1}",
                string.Join(' ', m.GetProperty("states").EnumerateObject().Select(p => $"{p.Name}:{p.Value.GetInt32()}")),
            ]));
            if (Output.Str(page, "next") is { Length: > 0 } next)
            {
                output.WriteLine($"(more: --cursor {next})");
            }

            return ExitCodes.Ok;
        }

        if (sub == "show")
        {
            var raw = args.Flag("raw");
            args.EnsureAllRead();
            var id = ids.Count == 1 ? ids[0] : throw new CliException(ExitCodes.Usage, "message show needs one message id.");
            if (raw)
            {
                await output.FlushAsync(cancellationToken);
                using var stdout = Console.OpenStandardOutput();
                await client.DownloadAsync($"/api/v1/admin/messages/{Uri.EscapeDataString(id)}/raw", stdout, cancellationToken);
                return ExitCodes.Ok;
            }

            var message = await client.GetAsync($"/api/v1/admin/messages/{Uri.EscapeDataString(id)}", cancellationToken);
            if (_json)
            {
                Output.WriteJson(output, message);
                return ExitCodes.Ok;
            }

            WriteMessage(message);
            return ExitCodes.Ok;
        }

        if (!Actions.Contains(sub))
        {
            throw new CliException(ExitCodes.Usage, $"Unknown message subcommand '{sub}' (list, show, retry, hold, release, bounce, delete).");
        }

        var reason = args.Option("reason");
        if (ids.Count > 0)
        {
            if (FilterOptions.Any(o => args.Option(o) is not null))
            {
                throw new CliException(ExitCodes.Usage, "Give message ids or a filter, not both.");
            }

            args.Flag("yes");
            args.EnsureAllRead();
            var total = new ActionTotals();
            foreach (var id in ids)
            {
                var result = await client.SendJsonAsync(HttpMethod.Post, $"/api/v1/admin/messages/{Uri.EscapeDataString(id)}/{sub}", new { reason }, cancellationToken);
                total.Add(result);
                if (_json)
                {
                    Output.WriteJson(output, result);
                }
            }

            if (!_json)
            {
                output.WriteLine(total.Describe(sub));
            }

            return ExitCodes.Ok;
        }

        return await BulkAsync(client, args, sub, reason, cancellationToken);
    }

    private async Task<int> BulkAsync(AdminClient client, Arguments args, string action, string? reason, CancellationToken cancellationToken)
    {
        var filter = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in FilterOptions)
        {
            if (args.Option(name) is { } value)
            {
                filter[name] = value;
            }
        }

        var all = args.Flag("all-messages");
        var yes = args.Flag("yes");
        args.EnsureAllRead();
        if (filter.Count == 0 && !all)
        {
            throw new CliException(ExitCodes.Usage, $"message {action} needs message ids or a filter (--domain, --sender, --recipient, --state, --class, --from, --to; --all-messages for every message).");
        }

        if (!yes)
        {
            // Show how much matches before asking (at most one page is counted).
            var preview = await client.GetAsync("/api/v1/admin/messages?limit=500&" + string.Join('&', filter.Select(f => $"{f.Key}={Uri.EscapeDataString(f.Value)}")), cancellationToken);
            var count = preview.GetProperty("items").GetArrayLength();
            var more = Output.Str(preview, "next").Length > 0;
            var description = filter.Count == 0 ? "every message" : string.Join(' ', filter.Select(f => $"{f.Key}={f.Value}"));
            error.Write($"{action} {(more ? "more than " + count.ToString(CultureInfo.InvariantCulture) : count.ToString(CultureInfo.InvariantCulture))} message(s) matching {description}? [y/N] ");
            var answer = (await input.ReadLineAsync(cancellationToken))?.Trim();
            if (answer is not ("y" or "Y" or "yes" or "YES"))
            {
                error.WriteLine("Nothing done.");
                return ExitCodes.Declined;
            }
        }

        var body = new Dictionary<string, object?> { ["action"] = action, ["filter"] = filter, ["reason"] = reason };
        if (all)
        {
            body["all"] = true;
        }

        var result = await client.SendJsonAsync(HttpMethod.Post, "/api/v1/admin/messages/actions", body, cancellationToken);
        if (_json)
        {
            Output.WriteJson(output, result);
        }
        else
        {
            var total = new ActionTotals();
            total.Add(result);
            output.WriteLine(total.Describe(action));
        }

        return ExitCodes.Ok;
    }

    private void WriteMessage(JsonElement m)
    {
        output.WriteLine($"Message   {Output.Str(m, "id")}");
        output.WriteLine($"From      <{Output.Str(m, "sender")}>");
        output.WriteLine($"Received  {Output.Str(m, "receivedAt")} from {Output.Str(m, "clientAddress")} ({Output.Str(m, "origin")}), {Output.Str(m, "size")} octets");
        if (Output.Str(m, "traceId") is { Length: > 0 } trace)
        {
            output.WriteLine($"Trace     {trace}");
        }

        if (Output.Str(m, "completedAt") is { Length: > 0 } completed)
        {
            output.WriteLine($"Completed {completed}");
        }

        output.WriteLine();
        foreach (var header in m.GetProperty("headers").EnumerateArray().Where(h => Output.Str(h, "name") is "Subject" or "From" or "To" or "Message-ID" or "Date"))
        {
            output.WriteLine($"{Output.Str(header, "name")}: {Output.Str(header, "value")}");
        }

        output.WriteLine();
        Output.WriteTable(output, ["recipient", "state", "attempts", "next attempt", "last reply"], m.GetProperty("recipients").EnumerateArray().Select(r => (IReadOnlyList<string>)
        [
            Output.Str(r, "address"),
            Output.Str(r, "state"),
            Output.Str(r, "attempts"),
            Output.Str(r, "nextAttemptAt"),
            string.Join(' ', new[] { Output.Str(r, "lastReplyCode"), Output.Str(r, "lastReplyText"), Output.Str(r, "lastRemoteHost") is { Length: > 0 } host ? $"({host})" : string.Empty }.Where(s => s.Length > 0)),
        ]));
        WriteAttempts(m);
        output.WriteLine();
        foreach (var e in m.GetProperty("events").EnumerateArray())
        {
            output.WriteLine($"{Output.Str(e, "at")}  {Output.Str(e, "type"),-10} {Output.Str(e, "recipient")} {Output.Str(e, "detail")}".TrimEnd());
        }
    }

    private async Task<int> SuppressAsync(AdminClient client, Arguments args, List<string> rest, CancellationToken cancellationToken)
    {
        var sub = rest.Count > 0 ? rest[0] : "list";
        var target = rest.Count > 1 ? rest[1] : null;
        switch (sub)
        {
            case "list":
                {
                    var query = new List<string> { "limit=" + (args.IntOption("limit") ?? 100).ToString(CultureInfo.InvariantCulture) };
                    foreach (var name in new[] { "prefix", "domain", "source", "cursor" })
                    {
                        if (args.Option(name) is { } value)
                        {
                            query.Add($"{name}={Uri.EscapeDataString(value)}");
                        }
                    }

                    args.EnsureAllRead();
                    var page = await client.GetAsync("/api/v1/admin/suppressions?" + string.Join('&', query), cancellationToken);
                    if (_json)
                    {
                        Output.WriteJson(output, page);
                        return ExitCodes.Ok;
                    }

                    Output.WriteTable(output, ["address", "source", "since", "expires", "reason"], page.GetProperty("items").EnumerateArray().Select(s => (IReadOnlyList<string>)
                    [
                        Output.Str(s, "address"), Output.Str(s, "source"), Output.Str(s, "createdAt"), Output.Str(s, "expiresAt") is { Length: > 0 } x ? x : "never", Output.Str(s, "reason"),
                ]));
                    if (Output.Str(page, "next") is { Length: > 0 } next)
                    {
                        output.WriteLine($"(more: --cursor {next})");
                    }

                    return ExitCodes.Ok;
                }

            case "add":
                {
                    var reason = args.Option("reason");
                    var expires = args.Option("expires");
                    args.EnsureAllRead();
                    var added = await client.SendJsonAsync(HttpMethod.Put, $"/api/v1/admin/suppressions/{Uri.EscapeDataString(Required(target, "suppress add needs an address."))}", new { reason, expiresAt = expires }, cancellationToken);
                    Done(added, $"Suppressed {Output.Str(added, "address")}.");
                    return ExitCodes.Ok;
                }

            case "remove":
                {
                    args.EnsureAllRead();
                    await client.SendAsync(HttpMethod.Delete, $"/api/v1/admin/suppressions/{Uri.EscapeDataString(Required(target, "suppress remove needs an address."))}", null, cancellationToken);
                    Done(default, $"Removed {target} from the suppression list.");
                    return ExitCodes.Ok;
                }

            case "import":
                {
                    args.EnsureAllRead();
                    var path = Required(target, "suppress import needs a CSV file (or - for standard input).");
                    string csv;
                    try
                    {
                        csv = path == "-" ? await input.ReadToEndAsync(cancellationToken) : await File.ReadAllTextAsync(path, cancellationToken);
                    }
                    catch (IOException e)
                    {
                        throw new CliException(ExitCodes.Usage, $"Cannot read {path}: {e.Message}");
                    }

                    var result = await client.SendAsync(HttpMethod.Post, "/api/v1/admin/suppressions/import", new StringContent(csv, Encoding.UTF8, "text/csv"), cancellationToken);
                    if (_json)
                    {
                        Output.WriteJson(output, result);
                    }
                    else
                    {
                        output.WriteLine($"Imported {Output.Str(result, "added")} suppression(s); {Output.Str(result, "errorCount")} line(s) refused.");
                        foreach (var e in result.GetProperty("errors").EnumerateArray())
                        {
                            output.WriteLine($"  line {Output.Str(e, "line")}: {Output.Str(e, "error")}");
                        }
                    }

                    return ExitCodes.Ok;
                }

            case "export":
                {
                    args.EnsureAllRead();
                    if (target is null or "-")
                    {
                        await output.FlushAsync(cancellationToken);
                        using var buffer = new MemoryStream();
                        await client.DownloadAsync("/api/v1/admin/suppressions/export", buffer, cancellationToken);
                        await output.WriteAsync(Encoding.UTF8.GetString(buffer.ToArray()));
                    }
                    else
                    {
                        await using var file = File.Create(target);
                        await client.DownloadAsync("/api/v1/admin/suppressions/export", file, cancellationToken);
                    }

                    return ExitCodes.Ok;
                }

            default:
                throw new CliException(ExitCodes.Usage, $"Unknown suppress subcommand '{sub}' (list, add, remove, import, export).");
        }
    }

    private async Task<int> KeysAsync(AdminClient client, Arguments args, List<string> rest, CancellationToken cancellationToken)
    {
        var sub = rest.Count > 0 ? rest[0] : "list";
        switch (sub)
        {
            case "list":
                {
                    args.EnsureAllRead();
                    var keys = await client.GetAsync("/api/v1/admin/keys", cancellationToken);
                    if (_json)
                    {
                        Output.WriteJson(output, keys);
                        return ExitCodes.Ok;
                    }

                    Output.WriteTable(output, ["name", "kind", "managed in", "enabled", "scopes / sender domains"], keys.EnumerateArray().Select(k => (IReadOnlyList<string>)
                    [
                        Output.Str(k, "name"), Output.Str(k, "kind"), Output.Str(k, "source"), Output.Str(k, "enabled"),
                        Output.Str(k, "kind") == "admin" ? string.Join(' ', k.GetProperty("scopes").EnumerateArray().Select(s => s.GetString())) : Output.Str(k, "senderDomains"),
                    ]));
                    return ExitCodes.Ok;
                }

            case "create":
                {
                    var name = Required(rest.Count > 1 ? rest[1] : null, "keys create needs a name.");
                    var kind = Required(args.Option("kind"), "keys create needs --kind admin or --kind submission.");
                    var scopes = args.Option("scopes");
                    var senderDomains = args.Option("sender-domains");
                    args.EnsureAllRead();
                    var created = await client.SendJsonAsync(HttpMethod.Post, "/api/v1/admin/keys", new { name, kind, scopes, senderDomains }, cancellationToken);
                    Done(created, $"Made {Output.Str(created, "kind")} key {Output.Str(created, "name")}. Its secret, shown only now:\n{Output.Str(created, "key")}");
                    return ExitCodes.Ok;
                }

            case "disable":
                {
                    var kind = Required(rest.Count > 1 ? rest[1] : null, "keys disable needs a kind (admin or submission) and a name.");
                    var name = Required(rest.Count > 2 ? rest[2] : null, "keys disable needs a kind (admin or submission) and a name.");
                    args.EnsureAllRead();
                    var disabled = await client.SendAsync(
                        HttpMethod.Post, $"/api/v1/admin/keys/{Uri.EscapeDataString(kind)}/{Uri.EscapeDataString(name)}/disable", null, cancellationToken);
                    Done(disabled, disabled.TryGetProperty("changed", out var changed) && changed.GetBoolean()
                        ? $"Disabled {kind} key {name}."
                        : $"The {kind} key {name} was disabled already.");
                    return ExitCodes.Ok;
                }

            default:
                throw new CliException(ExitCodes.Usage, $"Unknown keys subcommand '{sub}' (list, create, disable).");
        }
    }

    private async Task<int> UsersAsync(AdminClient client, Arguments args, List<string> rest, CancellationToken cancellationToken)
    {
        var sub = rest.Count > 0 ? rest[0] : "list";
        var address = rest.Count > 1 ? rest[1] : null;
        switch (sub)
        {
            case "list":
                {
                    var query = new List<string> { "limit=" + (args.IntOption("limit") ?? 100).ToString(CultureInfo.InvariantCulture) };
                    if (args.Option("after") is { } after)
                    {
                        query.Add("after=" + Uri.EscapeDataString(after));
                    }

                    args.EnsureAllRead();
                    var users = await client.GetAsync("/api/v1/admin/mailboxes?" + string.Join('&', query), cancellationToken);
                    if (_json)
                    {
                        Output.WriteJson(output, users);
                        return ExitCodes.Ok;
                    }

                    Output.WriteTable(output, ["address", "disabled", "password", "used", "quota"], users.EnumerateArray().Select(u => (IReadOnlyList<string>)
                    [
                        Output.Str(u, "address"), Output.Str(u, "disabled"), Output.Str(u, "hasPassword") == "true" ? "set" : "none", Output.Str(u, "usedBytes"),
                    Output.Str(u, "quotaBytes") is { Length: > 0 } q ? q : "-",
                ]));
                    return ExitCodes.Ok;
                }

            case "smtp":
                return await SmtpUsersAsync(client, args, rest.Skip(1).ToList(), cancellationToken);

            case "add" or "disable" or "enable":
                {
                    var password = args.Option("password");
                    var quota = args.Option("quota");
                    args.EnsureAllRead();
                    var body = new Dictionary<string, object?>();
                    if (sub == "add")
                    {
                        body["password"] = password;
                        if (quota is not null)
                        {
                            body["quotaBytes"] = long.TryParse(quota, NumberStyles.None, CultureInfo.InvariantCulture, out var bytes)
                                ? bytes
                                : throw new CliException(ExitCodes.Usage, "--quota must be a number of bytes.");
                        }
                    }
                    else
                    {
                        body["disabled"] = sub == "disable";
                    }

                    var user = await client.SendJsonAsync(HttpMethod.Put, $"/api/v1/admin/mailboxes/{Uri.EscapeDataString(Required(address, $"users {sub} needs an address."))}", body, cancellationToken);
                    Done(user, $"{Output.Str(user, "address")}: {(Output.Str(user, "disabled") == "true" ? "disabled" : "enabled")}.");
                    return ExitCodes.Ok;
                }

            default:
                throw new CliException(ExitCodes.Usage, $"Unknown users subcommand '{sub}' (list, add, disable, enable; smtp for SMTP AUTH accounts).");
        }
    }

    /// <summary><c>users smtp …</c>: the SMTP AUTH accounts of Ingress (<c>/api/v1/admin/smtp-users</c>).</summary>
    private async Task<int> SmtpUsersAsync(AdminClient client, Arguments args, List<string> rest, CancellationToken cancellationToken)
    {
        var sub = rest.Count > 0 ? rest[0] : "list";
        var name = rest.Count > 1 ? rest[1] : null;
        var path = name is null ? null : "/api/v1/admin/smtp-users/" + Uri.EscapeDataString(name);
        switch (sub)
        {
            case "list":
                {
                    args.EnsureAllRead();
                    var smtp = await client.GetAsync("/api/v1/admin/smtp-users", cancellationToken);
                    if (_json)
                    {
                        Output.WriteJson(output, smtp);
                        return ExitCodes.Ok;
                    }

                    Output.WriteTable(output, ["name", "sender domains", "managed in", "enabled", "made by", "disabled by"], smtp.EnumerateArray().Select(u => (IReadOnlyList<string>)
                    [
                        Output.Str(u, "name"), Output.Str(u, "senderDomains") is { Length: > 0 } d ? d : "any", Output.Str(u, "source"),
                        Output.Str(u, "enabled") is { Length: > 0 } e ? e : "true", Output.Str(u, "createdBy"), Output.Str(u, "disabledBy"),
                    ]));
                    return ExitCodes.Ok;
                }

            case "create":
                {
                    Required(name, "users smtp create needs a name.");
                    var senderDomains = args.Option("sender-domains");
                    var password = await PasswordFromInputAsync(args, cancellationToken);
                    args.EnsureAllRead();
                    var created = await client.SendJsonAsync(HttpMethod.Post, "/api/v1/admin/smtp-users", new { name, password, senderDomains }, cancellationToken);
                    Done(created, Output.Str(created, "password") is { Length: > 0 } generated
                        ? $"Made SMTP user {Output.Str(created, "name")}. Its password, shown only now:\n{generated}"
                        : $"Made SMTP user {Output.Str(created, "name")}.");
                    return ExitCodes.Ok;
                }

            case "disable" or "enable":
                {
                    Required(name, $"users smtp {sub} needs a name.");
                    var yes = args.Flag("yes");
                    args.EnsureAllRead();
                    if (sub == "disable" && !await ConfirmAsync(yes, $"Disable SMTP user {name} (it can no longer authenticate)?", cancellationToken))
                    {
                        return ExitCodes.Declined;
                    }

                    var changed = await client.SendAsync(HttpMethod.Post, $"{path}/{sub}", null, cancellationToken);
                    var done = sub == "disable" ? "disabled" : "enabled";
                    Done(changed, changed.TryGetProperty("changed", out var c) && c.GetBoolean()
                        ? $"SMTP user {Output.Str(changed, "name")} {done}."
                        : $"SMTP user {Output.Str(changed, "name")} was {done} already.");
                    return ExitCodes.Ok;
                }

            case "password":
                {
                    Required(name, "users smtp password needs a name.");
                    var yes = args.Flag("yes");
                    var password = await PasswordFromInputAsync(args, cancellationToken);
                    args.EnsureAllRead();
                    if (!await ConfirmAsync(yes || password is not null, $"Replace the password of SMTP user {name} (the old one stops working)?", cancellationToken))
                    {
                        return ExitCodes.Declined;
                    }

                    var reset = await client.SendJsonAsync(HttpMethod.Post, $"{path}/password", new { password }, cancellationToken);
                    Done(reset, Output.Str(reset, "password") is { Length: > 0 } generated
                        ? $"New password of SMTP user {Output.Str(reset, "name")}, shown only now:\n{generated}"
                        : $"Password of SMTP user {Output.Str(reset, "name")} replaced.");
                    return ExitCodes.Ok;
                }

            default:
                throw new CliException(ExitCodes.Usage, $"Unknown users smtp subcommand '{sub}' (list, create, disable, enable, password).");
        }
    }

    /// <summary>With --password-stdin, the first line of standard input (never a command-line argument: ps shows those).</summary>
    private async Task<string?> PasswordFromInputAsync(Arguments args, CancellationToken cancellationToken)
    {
        if (!args.Flag("password-stdin"))
        {
            return null;
        }

        var line = await input.ReadLineAsync(cancellationToken);
        return string.IsNullOrEmpty(line) ? throw new CliException(ExitCodes.Usage, "--password-stdin: standard input has no password line.") : line;
    }

    /// <summary>True with --yes; otherwise asks on standard error and reads y on standard input.</summary>
    private async Task<bool> ConfirmAsync(bool yes, string question, CancellationToken cancellationToken)
    {
        if (yes)
        {
            return true;
        }

        error.Write(question + " [y/N] ");
        var answer = (await input.ReadLineAsync(cancellationToken))?.Trim();
        if (answer is "y" or "Y" or "yes" or "YES")
        {
            return true;
        }

        error.WriteLine("Nothing done.");
        return false;
    }

    private async Task<int> AuditAsync(AdminClient client, Arguments args, CancellationToken cancellationToken)
    {
        var query = new List<string> { "limit=" + (args.IntOption("limit") ?? 50).ToString(CultureInfo.InvariantCulture) };
        if (args.Option("before") is { } before)
        {
            query.Add("before=" + Uri.EscapeDataString(before));
        }

        args.EnsureAllRead();
        var audit = await client.GetAsync("/api/v1/admin/audit?" + string.Join('&', query), cancellationToken);
        if (_json)
        {
            Output.WriteJson(output, audit);
            return ExitCodes.Ok;
        }

        Output.WriteTable(output, ["id", "at", "who", "action", "changed", "in flight", "target"], audit.GetProperty("items").EnumerateArray().Select(a => (IReadOnlyList<string>)
            [Output.Str(a, "id"), Output.Str(a, "at"), Output.Str(a, "actor"), Output.Str(a, "action"), Output.Str(a, "changed"), Output.Str(a, "skippedInFlight"), Output.Str(a, "target")]));
        return ExitCodes.Ok;
    }

    private async Task<int> WebhooksAsync(AdminClient client, Arguments args, List<string> rest, CancellationToken cancellationToken)
    {
        var sub = rest.Count > 0 ? rest[0] : "list";
        string Id() => Uri.EscapeDataString(Required(rest.Count > 1 ? rest[1] : null, $"webhooks {sub} needs an endpoint id (see 'mailmesh webhooks')."));
        switch (sub)
        {
            case "list":
                {
                    args.EnsureAllRead();
                    var hooks = await client.GetAsync("/api/v1/admin/webhooks", cancellationToken);
                    if (_json)
                    {
                        Output.WriteJson(output, hooks);
                        return ExitCodes.Ok;
                    }

                    Output.WriteTable(output, ["id", "url", "events", "enabled", "signed", "managed in"], hooks.GetProperty("items").EnumerateArray().Select(w => (IReadOnlyList<string>)
                    [
                        Output.Str(w, "id") is { Length: > 0 } id ? id : "-", Output.Str(w, "url"),
                        w.GetProperty("events").GetArrayLength() == 0 ? "all" : string.Join(',', w.GetProperty("events").EnumerateArray().Select(e => e.GetString())),
                        Output.Str(w, "enabled"), Output.Str(w, "signed"), Output.Str(w, "source"),
                    ]));
                    return ExitCodes.Ok;
                }

            case "add":
                {
                    var url = Required(rest.Count > 1 ? rest[1] : null, "webhooks add needs a URL.");
                    var events = EventList(args.Option("events"));
                    var secret = args.Option("secret");
                    var disabled = args.Flag("disabled");
                    args.EnsureAllRead();
                    var created = await client.SendJsonAsync(HttpMethod.Post, "/api/v1/admin/webhooks", new { url, events, secret, enabled = !disabled }, cancellationToken);
                    var hook = created.GetProperty("webhook");
                    Done(created, Output.Str(created, "secret") is { Length: > 0 } generated
                        ? $"Made webhook {Output.Str(hook, "id")} for {Output.Str(hook, "url")}. Its signing secret, shown only now:\n{generated}"
                        : $"Made webhook {Output.Str(hook, "id")} for {Output.Str(hook, "url")}.");
                    return ExitCodes.Ok;
                }

            case "update":
                {
                    var id = Id();
                    var body = new Dictionary<string, object?>();
                    // Not --url: that names the admin API.
                    if (args.Option("set-url") is { } url)
                    {
                        body["url"] = url;
                    }

                    if (args.Option("events") is { } events)
                    {
                        body["events"] = events == "all" ? Array.Empty<string>() : EventList(events);
                    }

                    if (args.Option("secret") is { } secret)
                    {
                        body["secret"] = secret;
                    }

                    if (args.Flag("rotate-secret"))
                    {
                        body["rotateSecret"] = true;
                    }

                    args.EnsureAllRead();
                    if (body.Count == 0)
                    {
                        throw new CliException(ExitCodes.Usage, "webhooks update needs --set-url, --events, --secret or --rotate-secret.");
                    }

                    var updated = await client.SendJsonAsync(HttpMethod.Patch, $"/api/v1/admin/webhooks/{id}", body, cancellationToken);
                    Done(updated, Output.Str(updated, "secret") is { Length: > 0 } generated
                        ? $"Updated webhook {Output.Str(updated.GetProperty("webhook"), "id")}. Its new signing secret, shown only now:\n{generated}"
                        : $"Updated webhook {Output.Str(updated.GetProperty("webhook"), "id")}.");
                    return ExitCodes.Ok;
                }

            case "disable" or "enable":
                {
                    var id = Id();
                    args.EnsureAllRead();
                    var result = await client.SendAsync(HttpMethod.Post, $"/api/v1/admin/webhooks/{id}/{sub}", null, cancellationToken);
                    Done(result, result.GetProperty("changed").GetBoolean() ? $"Webhook {Uri.UnescapeDataString(id)} {sub}d." : $"Webhook {Uri.UnescapeDataString(id)} was {sub}d already.");
                    return ExitCodes.Ok;
                }

            case "remove" or "delete":
                {
                    var id = Id();
                    args.EnsureAllRead();
                    await client.SendAsync(HttpMethod.Delete, $"/api/v1/admin/webhooks/{id}", null, cancellationToken);
                    if (!_json)
                    {
                        output.WriteLine($"Removed webhook {Uri.UnescapeDataString(id)} and its history.");
                    }

                    return ExitCodes.Ok;
                }

            case "history":
                {
                    var id = Id();
                    var query = new List<string> { "limit=" + (args.IntOption("limit") ?? 50).ToString(CultureInfo.InvariantCulture) };
                    if (args.Option("before") is { } before)
                    {
                        query.Add("before=" + Uri.EscapeDataString(before));
                    }

                    args.EnsureAllRead();
                    var history = await client.GetAsync($"/api/v1/admin/webhooks/{id}/deliveries?" + string.Join('&', query), cancellationToken);
                    if (_json)
                    {
                        Output.WriteJson(output, history);
                        return ExitCodes.Ok;
                    }

                    Output.WriteTable(output, ["id", "at", "event", "message", "status", "ms", "error"], history.GetProperty("items").EnumerateArray().Select(d => (IReadOnlyList<string>)
                    [
                        Output.Str(d, "id"), Output.Str(d, "at"), Output.Str(d, "eventType"), Output.Str(d, "messageId") is { Length: > 0 } m ? m : "-",
                        Output.Str(d, "statusCode") is { Length: > 0 } status ? status : "-", Output.Str(d, "durationMs"), Output.Str(d, "error"),
                    ]));
                    if (Output.Str(history, "next") is { Length: > 0 } next)
                    {
                        output.WriteLine($"More: --before {next}");
                    }

                    return ExitCodes.Ok;
                }

            case "test":
                {
                    var id = Id();
                    args.EnsureAllRead();
                    var outcome = await client.SendAsync(HttpMethod.Post, $"/api/v1/admin/webhooks/{id}/test", null, cancellationToken);
                    var succeeded = outcome.GetProperty("succeeded").GetBoolean();
                    var answer = Output.Str(outcome, "statusCode") is { Length: > 0 } code ? $"answered {code}" : Output.Str(outcome, "error");
                    Done(outcome, $"Test event {Output.Str(outcome, "eventId")}: {(succeeded ? "accepted" : "not accepted")}, {answer} in {Output.Str(outcome, "durationMs")} ms.");
                    if (!succeeded)
                    {
                        error.WriteLine($"mailmesh: the receiver did not accept the test event ({answer}).");
                    }

                    return succeeded ? ExitCodes.Ok : ExitCodes.Server;
                }

            default:
                throw new CliException(ExitCodes.Usage, $"Unknown webhooks subcommand '{sub}' (list, add, update, disable, enable, remove, history, test).");
        }
    }

    private static string[]? EventList(string? events) =>
        events?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private void Done(JsonElement result, string text)
    {
        if (_json && result.ValueKind != JsonValueKind.Undefined)
        {
            Output.WriteJson(output, result);
        }
        else if (!_json)
        {
            output.WriteLine(text);
        }
    }

    private static string Required(string? value, string message) => value ?? throw new CliException(ExitCodes.Usage, message);

    private static List<string> FilterQuery(Arguments args)
    {
        var query = new List<string>();
        foreach (var name in FilterOptions)
        {
            if (args.Option(name) is { } value)
            {
                query.Add($"{name}={Uri.EscapeDataString(value)}");
            }
        }

        return query;
    }

    /// <summary>Every attempt of every recipient: when, outcome, remote host, reply, and the session's TLS.</summary>
    private void WriteAttempts(JsonElement m)
    {
        var rows = new List<IReadOnlyList<string>>();
        foreach (var r in m.GetProperty("recipients").EnumerateArray())
        {
            if (!r.TryGetProperty("history", out var history))
            {
                continue;
            }

            foreach (var a in history.EnumerateArray())
            {
                rows.Add(
                [
                    Output.Str(r, "address"), Output.Str(a, "attemptedAt"), Output.Str(a, "state"), Output.Str(a, "remoteHost"),
                    string.Join(' ', new[] { Output.Str(a, "replyCode"), Output.Str(a, "enhancedCode"), Output.Str(a, "replyText") }.Where(s => s.Length > 0)),
                    Tls(a),
                ]);
            }
        }

        if (rows.Count > 0)
        {
            output.WriteLine();
            Output.WriteTable(output, ["recipient", "attempted", "outcome", "remote host", "reply", "tls"], rows);
        }

        // "TLSv1.3 TLS_AES_256_GCM_SHA384 verified (dane)", "none (clear text)", or "-" when no session answered.
        static string Tls(JsonElement attempt) =>
            !attempt.TryGetProperty("tls", out var tls) || tls.ValueKind != JsonValueKind.Object ? "-"
            : Output.Str(tls, "protocol") == "none" ? "none (clear text)"
            : string.Join(' ', new[] { Output.Str(tls, "protocol"), Output.Str(tls, "cipher") }.Where(s => s.Length > 0))
                + (tls.TryGetProperty("verified", out var verified) && verified.ValueKind == JsonValueKind.True ? $" verified ({Output.Str(tls, "verification")})" : " not verified");
    }

    private sealed class ActionTotals
    {
        private long _changed;
        private long _skipped;
        private long _dsns;

        public void Add(JsonElement result)
        {
            _changed += result.GetProperty("changed").GetInt32();
            _skipped += result.GetProperty("skippedInFlight").GetInt32();
            _dsns += result.GetProperty("dsnsQueued").GetInt32();
        }

        public string Describe(string action)
        {
            var what = action == "delete" ? "message(s) deleted" : $"recipient(s) changed by {action}";
            var text = $"{_changed} {what}";
            if (_skipped > 0)
            {
                text += $"; {_skipped} in flight left alone (repeat when their attempt has finished)";
            }

            if (_dsns > 0)
            {
                text += $"; {_dsns} DSN(s) queued to the sender";
            }

            return text + ".";
        }
    }
}
