namespace MailMesh.Cli;

/// <summary>
/// The command line split into positionals and options: <c>--name value</c>, <c>--name=value</c>, flags (<c>--json</c>,
/// <c>--yes</c>/<c>-y</c>), and <c>--</c> to end options. Options may come anywhere; every option a command does not
/// read is reported as unknown.
/// </summary>
internal sealed class Arguments
{
    private static readonly HashSet<string> Flags = new(StringComparer.Ordinal) { "json", "yes", "help", "all", "raw", "disable", "enable", "all-messages", "password-stdin", "disabled", "rotate-secret" };
    private readonly Dictionary<string, string> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public List<string> Positionals { get; } = [];

    public static Arguments Parse(IReadOnlyList<string> args)
    {
        var parsed = new Arguments();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                parsed.Positionals.AddRange(args.Skip(i + 1));
                break;
            }

            if (arg is "-y")
            {
                parsed._options["yes"] = "true";
            }
            else if (arg is "-h")
            {
                parsed._options["help"] = "true";
            }
            else if (arg.StartsWith("--", StringComparison.Ordinal) && arg.Length > 2)
            {
                var name = arg[2..];
                var equals = name.IndexOf('=', StringComparison.Ordinal);
                if (equals >= 0)
                {
                    parsed._options[name[..equals]] = name[(equals + 1)..];
                }
                else if (Flags.Contains(name))
                {
                    parsed._options[name] = "true";
                }
                else if (i + 1 < args.Count)
                {
                    parsed._options[name] = args[++i];
                }
                else
                {
                    throw new CliException(ExitCodes.Usage, $"--{name} needs a value.");
                }
            }
            else
            {
                parsed.Positionals.Add(arg);
            }
        }

        return parsed;
    }

    public string? Option(string name)
    {
        _read.Add(name);
        return _options.GetValueOrDefault(name);
    }

    public bool Flag(string name) => Option(name) is "true" or "1" or "yes";

    public int? IntOption(string name)
    {
        var text = Option(name);
        if (text is null)
        {
            return null;
        }

        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : throw new CliException(ExitCodes.Usage, $"--{name} must be a positive whole number (was '{text}').");
    }

    /// <summary>Fails on any option that nothing read (a typo must not silently widen a bulk action).</summary>
    public void EnsureAllRead()
    {
        var unknown = _options.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new CliException(ExitCodes.Usage, $"Unknown option{(unknown.Count > 1 ? "s" : "")}: {string.Join(", ", unknown.Select(u => "--" + u))}. See 'mailmesh --help'.");
        }
    }
}
