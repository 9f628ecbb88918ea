using MailKit;
using MailKit.Net.Imap;
using MailKit.Net.Pop3;
using MailKit.Security;
using MailMesh.Testing.Imap;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// A mailbox user fetching with MailKit's clients from a standalone listener (STARTTLS/STLS, the self-signed certificate
/// accepted by its name): an IMAP session idle in an empty INBOX that the next delivery wakes (no polling), and POP3.
/// </summary>
internal sealed class MailboxFetch : IDisposable
{
    private readonly ImapClient _imap;
    private readonly TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopIdle = new();
    private Task? _idle;

    private MailboxFetch(ImapClient imap) => _imap = imap;

    /// <summary>Logs in over IMAP, selects the (empty) INBOX and IDLEs in it.</summary>
    public static async Task<MailboxFetch> IdleInInboxAsync(int imapPort, string hostName, string user, string password)
    {
        var imap = await ImapSessions.ConnectAsync(imapPort, hostName, user, password);
        var fetch = new MailboxFetch(imap);
        await imap.Inbox.OpenAsync(FolderAccess.ReadWrite);
        Assert.Equal(0, imap.Inbox.Count);
        imap.Inbox.CountChanged += (_, _) => fetch._arrived.TrySetResult();
        fetch._idle = imap.IdleAsync(fetch._stopIdle.Token);
        return fetch;
    }

    /// <summary>Waits until a message arrives (<paramref name="diagnostics"/> says why not), ends IDLE and returns the
    /// first message's BODY[] bytes; logs out.</summary>
    public async Task<byte[]> WaitForFirstMessageAsync(TimeSpan patience, Func<string> diagnostics)
    {
        try
        {
            await _arrived.Task.WaitAsync(patience);
        }
        catch (TimeoutException)
        {
            Assert.Fail("no message reached the INBOX\n" + diagnostics());
        }

        await _stopIdle.CancelAsync();
        await _idle!.WaitAsync(patience);
        var uid = (await _imap.Inbox.FetchAsync(0, 0, MessageSummaryItems.UniqueId))[0].UniqueId;
        byte[] bytes;
        await using (var stream = await _imap.Inbox.GetStreamAsync(uid, string.Empty))
        {
            bytes = await ReadAllAsync(stream);
        }

        await _imap.DisconnectAsync(quit: true);
        return bytes;
    }

    /// <summary>Logs in over POP3 (STLS), checks the maildrop holds one message and RETRs it, optionally DELE + QUIT.</summary>
    public static async Task<byte[]> RetrieveOnlyMessageOverPop3Async(int pop3Port, string hostName, string user, string password, bool delete)
    {
        using var pop3 = new Pop3Client { ServerCertificateValidationCallback = (_, certificate, _, _) => certificate?.Subject == "CN=" + hostName };
        await pop3.ConnectAsync("127.0.0.1", pop3Port, SecureSocketOptions.StartTls);
        await pop3.AuthenticateAsync(user, password);
        Assert.Equal(1, pop3.Count);
        byte[] bytes;
        await using (var stream = await pop3.GetStreamAsync(0))
        {
            bytes = await ReadAllAsync(stream);
        }

        if (delete)
        {
            await pop3.DeleteMessageAsync(0);
        }

        await pop3.DisconnectAsync(quit: true);
        return bytes;
    }

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }

    public void Dispose()
    {
        _stopIdle.Dispose();
        _imap.Dispose();
    }
}
