using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.Benchmarks.Mailbox;

/// <summary>
/// Memory per idle IMAP session (not a BenchmarkDotNet benchmark: one measurement). Opens N sessions that log in,
/// SELECT INBOX and IDLE, then compares the managed heap (after a full collection) and the working set with before.
/// Client sockets live in the same process, so the figure is an upper bound for the server's share.
/// Run: dotnet run -c Release --project tools/MailMesh.Benchmarks -- --idle-sessions 500
/// </summary>
internal static class IdleSessionMemory
{
    public static async Task RunAsync(int sessions)
    {
        await using var server = await MailboxServer.StartAsync(100);
        var clients = new List<(TcpClient Tcp, StreamReader Reader)>();

        // One session first, so one-time costs (JIT, pools, the store's statements) are not counted per session.
        clients.Add(await OpenAsync(server, 0));
        var (heapBefore, workingSetBefore) = Measure();
        for (var i = 1; i <= sessions; i++)
        {
            clients.Add(await OpenAsync(server, i));
        }

        var (heapAfter, workingSetAfter) = Measure();
        Console.WriteLine($"{sessions} idle IMAP sessions (logged in, INBOX of 100 selected, IDLE):");
        Console.WriteLine($"  managed heap: {(heapAfter - heapBefore) / sessions / 1024.0:F1} KiB per session");
        Console.WriteLine($"  working set:  {(workingSetAfter - workingSetBefore) / sessions / 1024.0:F1} KiB per session (client sockets included)");
        foreach (var (tcp, reader) in clients)
        {
            reader.Dispose();
            tcp.Dispose();
        }
    }

    private static (long Heap, long WorkingSet) Measure()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(forceFullCollection: true), process.WorkingSet64);
    }

    private static async Task<(TcpClient, StreamReader)> OpenAsync(MailboxServer server, int i)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Imap);
        var stream = tcp.GetStream();
        var reader = new StreamReader(stream, Encoding.ASCII);
        await reader.ReadLineAsync();
        await SendAsync(stream, reader, $"a LOGIN {MailboxServer.User} {MailboxServer.Password}\r\n", "a ");
        await SendAsync(stream, reader, "b SELECT INBOX\r\n", "b ");
        await SendAsync(stream, reader, "c IDLE\r\n", "+ ");
        return (tcp, reader);
    }

    private static async Task SendAsync(NetworkStream stream, StreamReader reader, string command, string until)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes(command));
        while (await reader.ReadLineAsync() is { } line && !line.StartsWith(until, StringComparison.Ordinal))
        {
        }
    }
}
