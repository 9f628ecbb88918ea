using System.Globalization;

namespace MailMesh.LoadTool;

/// <summary>
/// CPU time of processes and process trees from /proc/&lt;pid&gt;/stat (utime, stime, cutime, cstime; proc(5)), read
/// before and after a run. A tree's CPU is Σ over its live members of utime+stime+cutime+cstime: a member that exited
/// and was reaped inside the tree is then counted in its reaper's cutime/cstime, so PostgreSQL backends that closed
/// during the run, or Postfix's smtpd and smtp processes that ended, are not lost.
/// </summary>
internal static class ProcessCpu
{
    private static readonly double TicksPerSecond = ReadTicksPerSecond();

    /// <summary>One process's counters in clock ticks.</summary>
    internal readonly record struct Stat(int Pid, int ParentPid, string Command, long UserTicks, long SystemTicks, long ChildUserTicks, long ChildSystemTicks)
    {
        public long OwnTicks => UserTicks + SystemTicks;
        public long ReapedChildTicks => ChildUserTicks + ChildSystemTicks;
    }

    /// <summary>Parses one /proc/&lt;pid&gt;/stat line; the command (field 2) may hold spaces and parentheses.</summary>
    internal static Stat? Parse(string line)
    {
        var open = line.IndexOf('(', StringComparison.Ordinal);
        var close = line.LastIndexOf(')');
        if (open < 1 || close < open)
        {
            return null;
        }

        // Fields after the command, 1-based as in proc(5): 3 state, 4 ppid, ..., 14 utime, 15 stime, 16 cutime, 17 cstime.
        var rest = line[(close + 2)..].Split(' ');
        if (rest.Length < 15)
        {
            return null;
        }

        long Field(int number) => long.Parse(rest[number - 3], CultureInfo.InvariantCulture);
        return new Stat(
            int.Parse(line[..open].Trim(), CultureInfo.InvariantCulture),
            (int)Field(4),
            line[(open + 1)..close],
            Field(14),
            Field(15),
            Field(16),
            Field(17));
    }

    /// <summary>Every process now (those that vanish while being read are skipped).</summary>
    public static IReadOnlyDictionary<int, Stat> Snapshot()
    {
        var all = new Dictionary<int, Stat>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(directory);
            if (!int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                if (Parse(File.ReadAllText(Path.Combine(directory, "stat"))) is { } stat)
                {
                    all[pid] = stat;
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return all;
    }

    /// <summary>Ticks of <paramref name="root"/> and its live descendants, including what they reaped.</summary>
    internal static long TreeTicks(IReadOnlyDictionary<int, Stat> snapshot, int root)
    {
        if (!snapshot.ContainsKey(root))
        {
            return 0;
        }

        var children = snapshot.Values.ToLookup(s => s.ParentPid, s => s.Pid);
        long total = 0;
        var pending = new Stack<int>([root]);
        while (pending.TryPop(out var pid))
        {
            if (snapshot.TryGetValue(pid, out var stat))
            {
                total += stat.OwnTicks + stat.ReapedChildTicks;
                foreach (var child in children[pid])
                {
                    pending.Push(child);
                }
            }
        }

        return total;
    }

    public static double Seconds(long ticks) => ticks / TicksPerSecond;

    private static double ReadTicksPerSecond()
    {
        // USER_HZ, as sysconf(_SC_CLK_TCK) reports it (100 on every mainstream Linux kernel).
        try
        {
            using var getconf = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("getconf", "CLK_TCK") { RedirectStandardOutput = true });
            var text = getconf?.StandardOutput.ReadToEnd().Trim();
            getconf?.WaitForExit();
            return double.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var ticks) && ticks > 0 ? ticks : 100;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return 100;
        }
    }
}

/// <summary>
/// The processes whose CPU a run accounts for, each a named process tree found when the run starts; CPU seconds
/// are the difference between two snapshots.
/// </summary>
internal sealed class CpuLedger
{
    private readonly List<(string Name, Func<IReadOnlyDictionary<int, ProcessCpu.Stat>, long> Read)> _entries = [];
    private long[] _before = [];

    public IReadOnlyList<string> Names => [.. _entries.Select(e => e.Name)];

    /// <summary>A process and its descendants (a service, Postfix's master, the RabbitMQ node, the postmaster).</summary>
    public CpuLedger AddTree(string name, int pid)
    {
        _entries.Add((name, snapshot => ProcessCpu.TreeTicks(snapshot, pid)));
        return this;
    }

    /// <summary>
    /// The PostgreSQL backends (descendants of <paramref name="postmaster"/>) that serve <paramref name="clients"/>, found
    /// anew at each snapshot; and, as a second entry, the rest of the cluster (others' backends, postmaster, WAL writer).
    /// </summary>
    public CpuLedger AddPostgres(string ours, string rest, int postmaster, IReadOnlyList<int> clients)
    {
        long Ours(IReadOnlyDictionary<int, ProcessCpu.Stat> snapshot)
        {
            var members = snapshot.Values.Where(s => s.ParentPid == postmaster).Select(s => s.Pid);
            return PostgresBackends.Serving(clients, members).Sum(pid => snapshot.TryGetValue(pid, out var s) ? s.OwnTicks : 0);
        }

        _entries.Add((ours, Ours));
        _entries.Add((rest, snapshot => ProcessCpu.TreeTicks(snapshot, postmaster) - Ours(snapshot)));
        return this;
    }

    /// <summary>This process alone (the built-in client, sink and DNS server).</summary>
    public CpuLedger AddSelf(string name)
    {
        var pid = Environment.ProcessId;
        _entries.Add((name, snapshot => snapshot.TryGetValue(pid, out var s) ? s.OwnTicks : 0));
        return this;
    }

    /// <summary>What this process reaped from its exited children (smtp-source, once it has exited).</summary>
    public CpuLedger AddReapedChildren(string name)
    {
        var pid = Environment.ProcessId;
        _entries.Add((name, snapshot => snapshot.TryGetValue(pid, out var s) ? s.ReapedChildTicks : 0));
        return this;
    }

    public void Start() => _before = Read();

    /// <summary>CPU seconds per entry since <see cref="Start"/>.</summary>
    public IReadOnlyList<(string Name, double Seconds)> Stop()
    {
        var after = Read();
        return [.. _entries.Select((e, i) => (e.Name, ProcessCpu.Seconds(after[i] - _before[i])))];
    }

    private long[] Read()
    {
        var snapshot = ProcessCpu.Snapshot();
        return [.. _entries.Select(e => e.Read(snapshot))];
    }
}
