using System.Threading.Channels;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;

namespace MailMesh.Testing.Imap;

/// <summary>MailKit IMAP sessions for tests of concurrent sessions: connect, wait until IDLE runs, and see what the
/// server reported to a folder (untagged FETCH FLAGS, EXPUNGE, EXISTS) as it arrives.</summary>
public static class ImapSessions
{
    /// <summary>Connects with STARTTLS (accepting only the self-signed certificate of <paramref name="hostName"/>) and logs in.</summary>
    public static async Task<ImapClient> ConnectAsync(int port, string hostName, string user, string password)
    {
        var client = new ImapClient { ServerCertificateValidationCallback = (_, certificate, _, _) => certificate?.Subject == "CN=" + hostName };
        try
        {
            await client.ConnectAsync("127.0.0.1", port, SecureSocketOptions.StartTls);
            await client.AuthenticateAsync(user, password);
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>MailKit has no "IDLE started" event; an IDLE command is in flight once the client reports IsIdle.</summary>
    public static async Task WaitForIdleAsync(ImapClient client, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var cancel = new CancellationTokenSource(timeout);
        while (!client.IsIdle)
        {
            await Task.Yield();
            cancel.Token.ThrowIfCancellationRequested();
        }
    }

    /// <summary>What the server reported to one open folder, from now on, in order.</summary>
    public sealed class Updates
    {
        public Updates(IMailFolder folder)
        {
            ArgumentNullException.ThrowIfNull(folder);
            folder.MessageFlagsChanged += (_, e) => Flags.Add((e.Index, e.Flags));
            folder.MessageExpunged += (_, e) => Expunged.Add(e.Index);
            folder.CountChanged += (sender, _) => Count.Add(((IMailFolder)sender!).Count);
        }

        /// <summary>Untagged FETCH with FLAGS: (index, flags).</summary>
        public Reports<(int Index, MessageFlags Flags)> Flags { get; } = new();

        /// <summary>Untagged EXPUNGE: the index (sequence number - 1) as the server numbered it.</summary>
        public Reports<int> Expunged { get; } = new();

        /// <summary>The folder's count after each change (EXISTS, EXPUNGE).</summary>
        public Reports<int> Count { get; } = new();
    }

    public sealed class Reports<T>
    {
        private readonly Channel<T> _channel = Channel.CreateUnbounded<T>();

        internal void Add(T item) => _channel.Writer.TryWrite(item);

        /// <summary>The first report (from those not read yet) that <paramref name="match"/> accepts; earlier ones are
        /// dropped. Throws <see cref="TimeoutException"/> when none comes within <paramref name="timeout"/>.</summary>
        public async Task<T> ReadAsync(Func<T, bool> match, TimeSpan timeout)
        {
            ArgumentNullException.ThrowIfNull(match);
            using var cancel = new CancellationTokenSource(timeout);
            try
            {
                while (true)
                {
                    var item = await _channel.Reader.ReadAsync(cancel.Token);
                    if (match(item))
                    {
                        return item;
                    }
                }
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                throw new TimeoutException($"no matching {typeof(T).Name} report within {timeout}");
            }
        }
    }
}
