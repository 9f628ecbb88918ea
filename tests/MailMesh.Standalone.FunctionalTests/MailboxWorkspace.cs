using MailMesh.ServiceDefaults.Security;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// What the mailbox tests of standalone MailMesh processes share (<see cref="MailboxStandaloneTests"/>,
/// <see cref="MailboxStoryTests"/>): a test DNS server, working directories deleted afterwards, and the settings that make
/// a standalone the final destination for a mailbox domain with one user, POP3 and IMAP on free loopback ports.
/// </summary>
internal sealed class MailboxWorkspace : IDisposable
{
    private readonly List<DirectoryInfo> _directories = [];

    public TestDnsServer Dns { get; } = TestDnsServer.Start();

    /// <summary>A new empty working directory (a standalone's data goes under it).</summary>
    public string NewDirectory(string prefix)
    {
        var directory = Directory.CreateTempSubdirectory(prefix);
        _directories.Add(directory);
        return directory.FullName;
    }

    /// <summary>
    /// Settings of a standalone that stores mail for <paramref name="domain"/> (<c>Policy:MailboxDomains</c>) in the
    /// account <paramref name="user"/>, who logs in with <paramref name="password"/> (none: the account only receives);
    /// the test DNS server, a short queue poll, the test API keys.
    /// </summary>
    public MailboxDestination Destination(string domain, string hostName, string user, string? password = null)
    {
        var pop3Port = LoopbackPort.Free();
        var imapPort = LoopbackPort.Free();
        var settings = new Dictionary<string, string>
        {
            ["Dns:Servers"] = Dns.EndPoint.ToString(),
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Policy:MailboxDomains"] = domain,
            ["Mailbox:HostName"] = hostName,
            ["Mailbox:Users:0:Address"] = user,
            ["Mailbox:Pop3Listen"] = $"127.0.0.1:{pop3Port}",
            ["Mailbox:ImapListen"] = $"127.0.0.1:{imapPort}",
        };
        if (password is not null)
        {
            settings["Mailbox:Users:0:PasswordHash"] = PasswordHash.Create(password, PasswordHash.MinIterations);
        }

        TestKeys.AddTo(settings);
        return new MailboxDestination(pop3Port, imapPort, settings);
    }

    public void Dispose()
    {
        Dns.Dispose();
        foreach (var directory in _directories)
        {
            directory.Delete(recursive: true);
        }
    }
}

/// <summary>A mailbox destination's listener ports and the settings to start it with (add to them as needed).</summary>
internal sealed record MailboxDestination(int Pop3Port, int ImapPort, Dictionary<string, string> Settings);
