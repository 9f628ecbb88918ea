using System.Text.Json;

namespace MailMesh.Cli;

/// <summary>
/// Where the admin API is and the key to present: <c>--url</c>/<c>--key</c>, else <c>MAILMESH_URL</c>/<c>MAILMESH_API_KEY</c>,
/// else the config file (<c>$XDG_CONFIG_HOME/mailmesh/cli.json</c>, by default <c>~/.config/mailmesh/cli.json</c>,
/// <c>{"url": "...", "key": "..."}</c>; <c>MAILMESH_CLI_CONFIG</c> names another file).
/// </summary>
internal sealed record CliSettings(Uri Url, string? Key)
{
    public const string DefaultUrl = "http://127.0.0.1:8025";

    public static CliSettings Resolve(Arguments args, IReadOnlyDictionary<string, string?> environment)
    {
        var file = ReadFile(environment);
        var url = args.Option("url") ?? Env(environment, "MAILMESH_URL") ?? file?.Url ?? DefaultUrl;
        var key = args.Option("key") ?? Env(environment, "MAILMESH_API_KEY") ?? file?.Key;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new CliException(ExitCodes.Usage, $"The admin API URL '{url}' is not an http(s) URL (--url, MAILMESH_URL or the config file).");
        }

        return new CliSettings(uri, string.IsNullOrWhiteSpace(key) ? null : key.Trim());
    }

    public static string ConfigPath(IReadOnlyDictionary<string, string?> environment)
    {
        if (Env(environment, "MAILMESH_CLI_CONFIG") is { } path)
        {
            return path;
        }

        var config = Env(environment, "XDG_CONFIG_HOME") ?? Path.Combine(Env(environment, "HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
        return Path.Combine(config, "mailmesh", "cli.json");
    }

    private static FileSettings? ReadFile(IReadOnlyDictionary<string, string?> environment)
    {
        var path = ConfigPath(environment);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<FileSettings>(File.ReadAllText(path), new JsonSerializerOptions(JsonSerializerDefaults.Web));
        }
        catch (JsonException e)
        {
            throw new CliException(ExitCodes.Usage, $"{path} is not valid JSON ({e.Message}); expected {{\"url\": \"...\", \"key\": \"...\"}}.");
        }
    }

    private static string? Env(IReadOnlyDictionary<string, string?> environment, string name) =>
        environment.TryGetValue(name, out var value) && !string.IsNullOrEmpty(value) ? value : null;

    private sealed record FileSettings(string? Url, string? Key);
}
