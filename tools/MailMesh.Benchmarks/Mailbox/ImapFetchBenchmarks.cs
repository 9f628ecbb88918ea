using BenchmarkDotNet.Attributes;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;

namespace MailMesh.Benchmarks.Mailbox;

/// <summary>
/// IMAP FETCH of a 1,000-message mailbox through MailKit, as a mail client opening a folder does: the summaries
/// (FLAGS, UID, RFC822.SIZE, INTERNALDATE, ENVELOPE) and BODYSTRUCTURE. Client and server in one process over loopback.
/// </summary>
[MemoryDiagnoser]
public class ImapFetchBenchmarks
{
    private MailboxServer? _server;
    private ImapClient? _client;

    [GlobalSetup]
    public void Setup()
    {
        _server = MailboxServer.StartAsync(1000).GetAwaiter().GetResult();
        _client = new ImapClient();
        _client.Connect("127.0.0.1", _server.Imap.Port, SecureSocketOptions.None);
        _client.Authenticate(MailboxServer.User, MailboxServer.Password);
        _client.Inbox.Open(FolderAccess.ReadOnly);
    }

    [Benchmark]
    public int FetchSummaries() =>
        _client!.Inbox.Fetch(0, -1, MessageSummaryItems.Flags | MessageSummaryItems.UniqueId | MessageSummaryItems.Size
            | MessageSummaryItems.InternalDate | MessageSummaryItems.Envelope).Count;

    [Benchmark]
    public int FetchBodyStructures() => _client!.Inbox.Fetch(0, -1, MessageSummaryItems.UniqueId | MessageSummaryItems.BodyStructure).Count;

    [Benchmark]
    public int FetchFlagsOnly() => _client!.Inbox.Fetch(0, -1, MessageSummaryItems.Flags | MessageSummaryItems.UniqueId).Count;

    [GlobalCleanup]
    public void Cleanup()
    {
        _client?.Disconnect(true);
        _client?.Dispose();
        _server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
