using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Testing.Postfix;

/// <summary>
/// A private, real Postfix MTA (master, smtpd, cleanup, qmgr, smtp, ...) for one test class: a secondary instance made
/// with postmulti(1) in the group "mailmesh", with its own config directory (/etc/NAME), queue (/var/spool/NAME), data
/// directory (/var/lib/NAME) and log file (/var/log/NAME.log, Postfix 3.4+ maillog_file through postlogd). smtpd
/// listens on one loopback address and port; nothing is delivered locally (mydestination is empty), so every message
/// leaves through the smtp client to the relayhost or transport the test configures.
/// </summary>
/// <remarks>
/// The default instance is touched only as postmulti needs: <c>postmulti -e init</c> (idempotent) and the instance
/// list in <c>multi_instance_directories</c>. Instance names carry the test process id, so instances left behind by a
/// crashed run are recognised and removed when the next run starts. Requires root (tests run as root) and Linux.
/// </remarks>
public sealed partial class PostfixInstance : IAsyncDisposable
{
    /// <summary>The postmulti group of every instance the tests create.</summary>
    public const string Group = "mailmesh";

    private const string NamePrefix = "postfix-mm";
    private static readonly SemaphoreSlim InitializeGate = new(1, 1);
    private static bool _initialized;
    private int _disposed;

    private PostfixInstance(string name, string hostName)
    {
        Name = name;
        HostName = hostName;
    }

    /// <summary>The instance name ("postfix-mm&lt;pid&gt;-&lt;random&gt;").</summary>
    public string Name { get; }

    /// <summary>myhostname.</summary>
    public string HostName { get; }

    public string ConfigDirectory => ConfigDirectoryOf(Name);

    public string QueueDirectory => QueueDirectoryOf(Name);

    public string DataDirectory => DataDirectoryOf(Name);

    /// <summary>The instance's log (maillog_file).</summary>
    public string LogFile => LogFileOf(Name);

    /// <summary>Where smtpd listens.</summary>
    public IPEndPoint EndPoint { get; private set; } = null!;

    public int Port => EndPoint.Port;

    /// <summary>Creates, configures and starts an instance; returns once smtpd greets on its port.</summary>
    public static async Task<PostfixInstance> StartAsync(PostfixInstanceOptions? options = null)
    {
        options ??= new PostfixInstanceOptions();
        PostfixTools.EnsureAvailable();
        await InitializeOnceAsync();

        var name = $"{NamePrefix}{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{RandomNumberGenerator.GetHexString(6, lowercase: true)}";
        var instance = new PostfixInstance(name, options.HostName);
        try
        {
            await using (await PostfixTools.LockDefaultInstanceAsync())
            {
                await PostfixTools.RunAsync("postmulti",
                [
                    "-e", "create", "-I", name, "-G", Group,
                    "config_directory=" + instance.ConfigDirectory,
                    "queue_directory=" + instance.QueueDirectory,
                    "data_directory=" + instance.DataDirectory,
                ]);
            }

            await instance.ConfigureAsync(options);

            await using (await PostfixTools.LockDefaultInstanceAsync())
            {
                await PostfixTools.RunAsync("postmulti", ["-i", name, "-e", "enable"]);
            }

            await PostfixTools.RunAsync("postmulti", ["-i", name, "-p", "start"]);
            await instance.WaitForGreetingAsync(TimeSpan.FromSeconds(30));
            return instance;
        }
        catch
        {
            await instance.DisposeAsync();
            throw;
        }
    }

    private async Task ConfigureAsync(PostfixInstanceOptions options)
    {
        var port = options.Port != 0 ? options.Port : LoopbackPort.Free(options.Address);
        EndPoint = new IPEndPoint(options.Address, port);
        var address = options.Address.ToString();

        var settings = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["multi_instance_enable"] = "yes",
            // postmulti creates instances with inet services disabled; this one is meant to listen.
            ["master_service_disable"] = string.Empty,
            ["inet_interfaces"] = address,
            ["inet_protocols"] = "ipv4",
            ["myhostname"] = HostName,
            ["myorigin"] = "$myhostname",
            ["mydestination"] = string.Empty,
            ["mynetworks"] = "127.0.0.0/8",
            ["local_recipient_maps"] = string.Empty,
            ["alias_maps"] = string.Empty,
            ["alias_database"] = string.Empty,
            ["authorized_submit_users"] = "static:anyone",
            ["maillog_file"] = LogFile,
            ["smtputf8_enable"] = "yes",
            // Loopback only: no reverse DNS for clients, no DNS for next hops given as [address]:port.
            ["smtpd_peername_lookup"] = "no",
            ["smtp_host_lookup"] = "native",
            ["smtp_tls_security_level"] = "none",
            ["smtp_tls_loglevel"] = "1",
            ["smtpd_tls_loglevel"] = "1",
            // A test never waits minutes for a retry: deferred mail is retried within seconds.
            ["queue_run_delay"] = "1s",
            ["minimal_backoff_time"] = "1s",
            ["maximal_backoff_time"] = "2s",
            ["smtp_connect_timeout"] = "10s",
            ["delay_warning_time"] = "0",
        };

        if (options.Certificate is { } certificate)
        {
            var certificatePath = Path.Combine(ConfigDirectory, "smtpd-cert.pem");
            var keyPath = Path.Combine(ConfigDirectory, "smtpd-key.pem");
            await File.WriteAllTextAsync(certificatePath, certificate.ExportCertificatePem());
            var key = (AsymmetricAlgorithm?)certificate.GetECDsaPrivateKey() ?? certificate.GetRSAPrivateKey()
                ?? throw new ArgumentException("the smtpd certificate needs its private key (ECDSA or RSA)", nameof(options));
            using (key)
            {
                await File.WriteAllTextAsync(keyPath, key.ExportPkcs8PrivateKeyPem());
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            settings["smtpd_tls_security_level"] = "may";
            settings["smtpd_tls_cert_file"] = certificatePath;
            settings["smtpd_tls_key_file"] = keyPath;
            settings["smtpd_tls_received_header"] = "yes";
        }
        else
        {
            settings["smtpd_tls_security_level"] = "none";
        }

        foreach (var (map, content) in options.Maps)
        {
            var path = Path.Combine(ConfigDirectory, map);
            await File.WriteAllTextAsync(path, content);
            await PostfixTools.RunAsync("postmap", ["-c", ConfigDirectory, "hash:" + path]);
        }

        foreach (var (key, value) in options.Settings)
        {
            settings[key] = value;
        }

        await PostconfAsync(["-e", .. settings.Select(pair => $"{pair.Key}={pair.Value}")]);

        // master.cf: the "smtp inet" service on port 25 is replaced by one smtpd on the chosen address and port; no
        // service runs chrooted (a private queue directory has no copies of /etc files for a chroot).
        await PostconfAsync(["-M#", "smtp/inet"]);
        var service = $"{address}:{port.ToString(CultureInfo.InvariantCulture)}";
        await PostconfAsync(["-M", $"{service}/inet={service} inet n - n - - smtpd"]);
        await PostconfAsync(["-F", "*/*/chroot=n"]);
        if (string.IsNullOrWhiteSpace(await PostconfAsync(["-M", "postlog/unix-dgram"])))
        {
            // maillog_file is written by postlogd (Postfix 3.4+).
            await PostconfAsync(["-M", "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"]);
        }
    }

    /// <summary>Runs postconf(1) against this instance's config directory.</summary>
    public Task<string> PostconfAsync(IEnumerable<string> arguments) =>
        PostfixTools.RunAsync("postconf", ["-c", ConfigDirectory, .. arguments]);

    /// <summary>Sets main.cf parameters and reloads the running instance.</summary>
    public async Task SetAndReloadAsync(IReadOnlyDictionary<string, string> settings)
    {
        await PostconfAsync(["-e", .. settings.Select(pair => $"{pair.Key}={pair.Value}")]);
        await PostfixTools.RunAsync("postfix", ["-c", ConfigDirectory, "reload"]);
    }

    /// <summary>Injects a message with Postfix's sendmail(1) (postdrop, pickup, cleanup, qmgr).</summary>
    /// <remarks>-i: a line with a single "." does not end the message; it is content.</remarks>
    public Task SendmailAsync(string sender, IEnumerable<string> recipients, byte[] message) =>
        PostfixTools.RunAsync("sendmail", ["-C", ConfigDirectory, "-i", "-f", sender, "--", .. recipients], message);

    /// <summary>The instance's queue (maildrop, incoming, active, deferred, hold) as postqueue -j reports it.</summary>
    public async Task<IReadOnlyList<PostfixQueueEntry>> GetQueueAsync() =>
        PostfixQueueEntry.ParseLines(await PostfixTools.RunAsync("postqueue", ["-c", ConfigDirectory, "-j"]));

    /// <summary>Asks the queue manager to retry deferred mail now (postqueue -f).</summary>
    public Task FlushAsync() => PostfixTools.RunAsync("postqueue", ["-c", ConfigDirectory, "-f"]);

    /// <summary>Waits until the queue is empty: every message was delivered, or bounced and its bounce delivered.</summary>
    public async Task WaitForEmptyQueueAsync(TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        IReadOnlyList<PostfixQueueEntry> queue;
        while ((queue = await GetQueueAsync()).Count > 0)
        {
            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new TimeoutException(
                    $"Postfix {Name} still holds {queue.Count} message(s) after {timeout.TotalSeconds} s: " +
                    string.Join(" | ", queue) + "\nLog:\n" + ReadLog());
            }

            await poll.WaitForNextTickAsync();
        }
    }

    /// <summary>The instance's log so far (empty when nothing was logged yet).</summary>
    public string ReadLog()
    {
        try
        {
            using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return reader.ReadToEnd();
        }
        catch (FileNotFoundException)
        {
            return string.Empty;
        }
    }

    /// <summary>Waits until a log line matches <paramref name="pattern"/>; returns that line.</summary>
    public async Task<string> WaitForLogLineAsync(Regex pattern, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var deadline = DateTimeOffset.UtcNow + timeout;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        while (true)
        {
            var line = ReadLog().Split('\n').FirstOrDefault(pattern.IsMatch);
            if (line is not null)
            {
                return line;
            }

            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new TimeoutException($"Postfix {Name} logged no line matching /{pattern}/ in {timeout.TotalSeconds} s. Log:\n{ReadLog()}");
            }

            await poll.WaitForNextTickAsync();
        }
    }

    /// <summary>Readiness: smtpd on the port greets with this instance's own name (not some other listener's).</summary>
    private async Task WaitForGreetingAsync(TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        string? last = null;
        while (DateTimeOffset.UtcNow < deadline)
        {
            try
            {
                using var client = new TcpClient(AddressFamily.InterNetwork);
                using var attempt = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.ConnectAsync(EndPoint, attempt.Token);
                using var reader = new StreamReader(client.GetStream(), Encoding.ASCII);
                last = await reader.ReadLineAsync(attempt.Token);
                if (last is not null && last.StartsWith("220 " + HostName + " ", StringComparison.Ordinal))
                {
                    await client.GetStream().WriteAsync("QUIT\r\n"u8.ToArray(), attempt.Token);
                    return;
                }
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
            {
                last = ex.Message;
            }

            await poll.WaitForNextTickAsync();
        }

        throw new TimeoutException($"Postfix {Name} did not greet on {EndPoint} within {timeout.TotalSeconds} s (last: {last}). Log:\n{ReadLog()}");
    }

    // ---- Lifecycle of instances across runs ------------------------------------------------------------------------

    /// <summary>Once per test process: enable multi-instance support and remove instances of dead test processes.</summary>
    private static async Task InitializeOnceAsync()
    {
        await InitializeGate.WaitAsync();
        try
        {
            if (_initialized)
            {
                return;
            }

            await using (await PostfixTools.LockDefaultInstanceAsync())
            {
                await PostfixTools.RunAsync("postmulti", ["-e", "init"]);
            }

            foreach (var stale in StaleInstanceNames())
            {
                await DestroyAsync(stale);
            }

            _initialized = true;
        }
        finally
        {
            InitializeGate.Release();
        }
    }

    /// <summary>Names of this fixture's instances (listed, or with directories left) whose test process is gone.</summary>
    private static IEnumerable<string> StaleInstanceNames()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var root in new[] { "/etc", "/var/spool", "/var/lib", "/var/log" })
        {
            if (Directory.Exists(root))
            {
                foreach (var entry in Directory.EnumerateFileSystemEntries(root, NamePrefix + "*"))
                {
                    names.Add(Path.GetFileName(entry).Replace(".log", string.Empty, StringComparison.Ordinal));
                }
            }
        }

        foreach (var directory in ListedDirectories())
        {
            names.Add(Path.GetFileName(directory));
        }

        return names.Where(name => InstanceName().Match(name) is { Success: true } match
            && !Directory.Exists("/proc/" + match.Groups["pid"].Value));
    }

    private static string[] ListedDirectories()
    {
        try
        {
            return File.ReadAllLines("/etc/postfix/main.cf")
                .Where(line => line.StartsWith("multi_instance_directories", StringComparison.Ordinal))
                .SelectMany(line => line[(line.IndexOf('=', StringComparison.Ordinal) + 1)..]
                    .Split([' ', ',', '\t'], StringSplitOptions.RemoveEmptyEntries))
                .ToArray();
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>
    /// Stops the instance, takes it out of the default instance's list (postmulti disable + destroy) and deletes
    /// what is left of it. postmulti destroy keeps a non-empty queue; a test instance's queue is discarded.
    /// </summary>
    private static async Task DestroyAsync(string name)
    {
        var config = ConfigDirectoryOf(name);
        if (File.Exists(Path.Combine(config, "main.cf")))
        {
            // "not running" is an error exit here, and fine.
            await PostfixTools.TryRunAsync("postfix", ["-c", config, "stop"]);
        }

        await using (await PostfixTools.LockDefaultInstanceAsync())
        {
            if (ListedDirectories().Contains(config, StringComparer.Ordinal))
            {
                await PostfixTools.TryRunAsync("postmulti", ["-i", name, "-e", "disable"]);
                await PostfixTools.TryRunAsync("postmulti", ["-i", name, "-e", "destroy"]);
            }

            var listed = ListedDirectories();
            if (listed.Contains(config, StringComparer.Ordinal))
            {
                var rest = string.Join(' ', listed.Where(d => d != config));
                await PostfixTools.RunAsync("postconf", ["-e", "multi_instance_directories=" + rest]);
            }
        }

        foreach (var directory in new[] { config, QueueDirectoryOf(name), DataDirectoryOf(name) })
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }

        File.Delete(LogFileOf(name));
    }

    private static string ConfigDirectoryOf(string name) => "/etc/" + name;

    private static string QueueDirectoryOf(string name) => "/var/spool/" + name;

    private static string DataDirectoryOf(string name) => "/var/lib/" + name;

    private static string LogFileOf(string name) => $"/var/log/{name}.log";

    [GeneratedRegex("^postfix-mm(?<pid>[0-9]+)-[0-9a-f]+$")]
    private static partial Regex InstanceName();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await DestroyAsync(Name);
        }
    }
}
