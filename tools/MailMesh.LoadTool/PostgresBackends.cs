using System.Globalization;

namespace MailMesh.LoadTool;

/// <summary>
/// Which PostgreSQL backends serve given processes: a backend's title ("postgres: user db 127.0.0.1(54321) idle")
/// names its client's TCP port, and the processes' sockets (/proc/&lt;pid&gt;/fd → socket inodes → /proc/net/tcp and
/// tcp6) name their local ports. On a machine where other engineers' tests use the same cluster, even the same
/// database, this is what tells our backends from theirs.
/// </summary>
internal static class PostgresBackends
{
    /// <summary>Backend pids whose client is one of <paramref name="clientPids"/>, among the given postgres processes.</summary>
    public static IReadOnlySet<int> Serving(IEnumerable<int> clientPids, IEnumerable<int> postgresPids)
    {
        var ports = LocalPorts(clientPids);
        var backends = new HashSet<int>();
        if (ports.Count == 0)
        {
            return backends;
        }

        foreach (var pid in postgresPids)
        {
            try
            {
                var title = File.ReadAllText($"/proc/{pid}/cmdline").TrimEnd('\0').Replace('\0', ' ');
                if (ParseClientPort(title) is { } port && ports.Contains(port))
                {
                    backends.Add(pid);
                }
            }
            catch (IOException)
            {
            }
        }

        return backends;
    }

    /// <summary>The client port in a backend title such as "postgres: mailmesh mailmesh 127.0.0.1(54321) idle".</summary>
    internal static int? ParseClientPort(string title)
    {
        if (!title.StartsWith("postgres: ", StringComparison.Ordinal))
        {
            return null;
        }

        var close = title.IndexOf(") ", StringComparison.Ordinal);
        if (close < 0 && title.EndsWith(')'))
        {
            close = title.Length - 1;
        }

        var open = close < 0 ? -1 : title.LastIndexOf('(', close);
        return open >= 0 && int.TryParse(title.AsSpan(open + 1, close - open - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) ? port : null;
    }

    /// <summary>Local TCP ports of the sockets the processes hold.</summary>
    private static HashSet<int> LocalPorts(IEnumerable<int> pids)
    {
        var inodes = new HashSet<long>();
        foreach (var pid in pids)
        {
            try
            {
                foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                {
                    var target = new FileInfo(fd).LinkTarget;
                    if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal)
                        && long.TryParse(target.AsSpan(8, target.Length - 9), NumberStyles.None, CultureInfo.InvariantCulture, out var inode))
                    {
                        inodes.Add(inode);
                    }
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        var ports = new HashSet<int>();
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table))
            {
                continue;
            }

            foreach (var line in File.ReadLines(table).Skip(1))
            {
                // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 9 && long.TryParse(fields[9], NumberStyles.None, CultureInfo.InvariantCulture, out var inode) && inodes.Contains(inode))
                {
                    var local = fields[1];
                    ports.Add(int.Parse(local.AsSpan(local.LastIndexOf(':') + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                }
            }
        }

        return ports;
    }
}
