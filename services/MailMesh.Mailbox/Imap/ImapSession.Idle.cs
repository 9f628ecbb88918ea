using System.Buffers;
using System.Text;
using MailMesh.Mailbox.Protocols;

namespace MailMesh.Mailbox.Imap;

/// <summary>
/// IDLE (RFC 2177, RFC 9051 §6.3.13) and the updates other sessions cause: the store's change signal (any replica)
/// wakes the session, which re-reads the selected folder and reports what changed (EXISTS, EXPUNGE, FETCH FLAGS).
/// </summary>
internal sealed partial class ImapSession
{
    private async Task IdleAsync(ImapCommand c)
    {
        W.Raw("+ idling\r\n");
        if (_state == ImapState.Selected)
        {
            await SyncAsync(reportExpunges: true);
        }

        await FlushAsync();
        var input = _connection.Input;
        using var deadline = _connection.StartDeadline(_services.Options.ImapIdleTimeout);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
        var read = input.ReadAsync(deadline.Token).AsTask();
        try
        {
            while (true)
            {
                var change = _watch!.WaitAsync(stop.Token).AsTask();
                var first = await Task.WhenAny(read, change);
                if (first == change)
                {
                    await change;
                    if (_state == ImapState.Selected)
                    {
                        await SyncAsync(reportExpunges: true);
                        await FlushAsync();
                    }

                    continue;
                }

                await stop.CancelAsync();
                try
                {
                    await change;
                }
                catch (OperationCanceledException)
                {
                    // The wait for a change stops with IDLE.
                }

                var result = await read;
                var buffer = result.Buffer;
                var lf = buffer.PositionOf((byte)'\n');
                if (lf is null)
                {
                    if (result.IsCompleted || buffer.Length > 64)
                    {
                        input.AdvanceTo(buffer.End);
                        _state = ImapState.Logout;
                        return;
                    }

                    input.AdvanceTo(buffer.Start, buffer.End);
                    read = input.ReadAsync(deadline.Token).AsTask();
                    stop.TryReset();
                    continue;
                }

                var line = Encoding.ASCII.GetString(buffer.Slice(0, lf.Value).ToArray()).TrimEnd('\r');
                input.AdvanceTo(buffer.GetPosition(1, lf.Value));
                if (line.Equals("DONE", StringComparison.OrdinalIgnoreCase))
                {
                    Ok(c, "IDLE terminated");
                }
                else
                {
                    await BadAsync(c.Tag, "Expected DONE");
                }

                return;
            }
        }
        catch (OperationCanceledException) when (deadline.TimedOut)
        {
            MailboxProtocolLog.TimedOut(_services.Logger, "IMAP", _connection.Client);
            W.Raw("* BYE Autologout; idle for too long\r\n");
            _state = ImapState.Logout;
        }
    }

    /// <summary>
    /// Re-reads the selected folder and reports the difference to what this session last reported: expunged messages
    /// (when allowed: not during FETCH, STORE or SEARCH, RFC 9051 §7.5.1), changed flags, and the new count.
    /// </summary>
    private async Task SyncAsync(bool reportExpunges)
    {
        while (_watch!.TryRead(out _))
        {
        }

        var current = await ListAllAsync(_selected!);
        var byUid = current.ToDictionary(m => m.Uid);
        if (reportExpunges)
        {
            ReportExpunged(_messages.Where(m => !byUid.ContainsKey(m.Uid)).Select(m => m.Uid).ToHashSet());
        }

        var w = W;
        for (var i = 0; i < _messages.Count; i++)
        {
            if (byUid.TryGetValue(_messages[i].Uid, out var now) && (now.Flags != _messages[i].Flags || !now.Keywords.SequenceEqual(_messages[i].Keywords)))
            {
                _messages[i] = now;
                w.Raw("* ").Number(i + 1).Raw(" FETCH (");
                WriteFlags(w, now);
                w.Raw(" UID ").Number(now.Uid).Raw(")\r\n");
            }
        }

        var last = _messages.Count > 0 ? _messages[^1].Uid : 0;
        var added = current.Where(m => m.Uid > last).ToList();
        if (added.Count > 0)
        {
            _messages.AddRange(added);
            w.Raw("* ").Number(_messages.Count).Raw(" EXISTS\r\n");
        }
    }
}
