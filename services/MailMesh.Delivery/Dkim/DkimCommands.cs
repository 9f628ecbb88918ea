namespace MailMesh.Delivery.Dkim;

/// <summary>
/// The DKIM verbs of Delivery and Standalone (beside "hash-password" and "new-api-key" of every service):
/// <list type="bullet">
/// <item><c>dkim-keygen [--algorithm rsa-sha256|ed25519-sha256] [--out FILE]</c>: a new private key as PEM (RSA 2048 by
/// default), to FILE (created owner-only) or standard output, and its DNS record text.</item>
/// <item><c>dkim-record --key FILE --selector S --domain D</c>: the TXT record to publish for a key file.</item>
/// <item><c>dkim-records [settings]</c>: the records of every configured key (Dkim:Keys, from appsettings.json, the
/// environment and the command line, as the service reads them).</item>
/// </list>
/// </summary>
public static class DkimCommands
{
    /// <summary>Runs a DKIM verb; null when <paramref name="args"/> is not one (the service starts).</summary>
    public static async Task<int?> TryRunAsync(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        return args switch
        {
            ["dkim-keygen", .. var rest] => await KeygenAsync(Options(rest), output, error),
            ["dkim-record", .. var rest] => await RecordAsync(Options(rest), output, error),
            ["dkim-records", .. var rest] => await RecordsAsync(rest, output, error),
            _ => null,
        };
    }

    private static async Task<int> KeygenAsync(Dictionary<string, string> options, TextWriter output, TextWriter error)
    {
        if (!DkimPrivateKey.TryParseAlgorithm(options.GetValueOrDefault("algorithm", "rsa-sha256"), out var algorithm))
        {
            await error.WriteLineAsync("dkim-keygen: --algorithm must be rsa-sha256 or ed25519-sha256");
            return 2;
        }

        using var key = DkimPrivateKey.Generate(algorithm);
        if (options.TryGetValue("out", out var path))
        {
            var file = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                file.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            try
            {
                // `--out keys/s2026.pem` as docs/authentication.md shows it: a missing directory is made, owner-only.
                if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } directory && !Directory.Exists(directory))
                {
                    if (OperatingSystem.IsWindows())
                    {
                        Directory.CreateDirectory(directory);
                    }
                    else
                    {
                        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                    }
                }

                await using var stream = new FileStream(path, file);
                await using var writer = new StreamWriter(stream);
                await writer.WriteLineAsync(key.ToPem());
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"dkim-keygen: cannot write {path}: {ex.Message}");
                return 2;
            }

            await output.WriteLineAsync($"wrote {key.AlgorithmName} key to {path}; publish:");
            await output.WriteLineAsync(key.RecordText());
            return 0;
        }

        await output.WriteLineAsync(key.ToPem());
        return 0;
    }

    private static async Task<int> RecordAsync(Dictionary<string, string> options, TextWriter output, TextWriter error)
    {
        if (!options.TryGetValue("key", out var path) || !options.TryGetValue("selector", out var selector) || !options.TryGetValue("domain", out var domain))
        {
            await error.WriteLineAsync("usage: dkim-record --key FILE.pem --selector SELECTOR --domain DOMAIN");
            return 2;
        }

        if (!DkimOptions.IsDomain(selector) || !DkimOptions.IsDomain(domain.TrimEnd('.')))
        {
            await error.WriteLineAsync("dkim-record: --selector and --domain must be domain names (A-labels)");
            return 2;
        }

        try
        {
            using var key = DkimPrivateKey.FromPem(await File.ReadAllTextAsync(path));
            await output.WriteLineAsync(DkimPrivateKey.ZoneLine(selector, domain, key.RecordText()));
            return 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            await error.WriteLineAsync($"dkim-record: cannot load {path}: {ex.Message}");
            return 2;
        }
    }

    private static async Task<int> RecordsAsync(string[] args, TextWriter output, TextWriter error)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        var settings = new DkimOptions();
        configuration.GetSection(DkimOptions.SectionName).Bind(settings);
        var failures = settings.Validate().ToList();
        if (failures.Count > 0)
        {
            foreach (var failure in failures)
            {
                await error.WriteLineAsync("dkim-records: configuration error: " + failure);
            }

            return 2;
        }

        if (settings.Keys.Count == 0)
        {
            await error.WriteLineAsync("dkim-records: no keys configured (Dkim:Keys)");
            return 2;
        }

        foreach (var configured in settings.Keys)
        {
            using var key = DkimPrivateKey.FromPem(await File.ReadAllTextAsync(configured.KeyPath!));
            await output.WriteLineAsync(
                $"; {configured.Domain} selector {configured.Selector}: {key.AlgorithmName}{(configured.Sign ? string.Empty : " (Sign=false: published, not signing)")}");
            await output.WriteLineAsync(DkimPrivateKey.ZoneLine(configured.Selector!, configured.Domain!, key.RecordText()));
        }

        return 0;
    }

    /// <summary>"--name value" pairs.</summary>
    private static Dictionary<string, string> Options(string[] args)
    {
        var options = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i].StartsWith("--", StringComparison.Ordinal))
            {
                options[args[i][2..]] = args[i + 1];
            }
        }

        return options;
    }
}
