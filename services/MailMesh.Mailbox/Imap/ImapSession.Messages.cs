using System.Buffers;
using System.Globalization;
using MailMesh.Storage;
using MimeKit;

namespace MailMesh.Mailbox.Imap;

/// <summary>The selected state (RFC 9051 §6.4): FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT.</summary>
internal sealed partial class ImapSession
{
    /// <summary>Messages up to this size are buffered in memory to be parsed; larger ones go to a temporary file.</summary>
    private const int InMemoryMessage = 1024 * 1024;

    private MailFolder? _selected;
    private bool _readOnly;

    /// <summary>The selected folder's messages in sequence-number order (index + 1), as this session last reported them.</summary>
    private List<MailMessageInfo> _messages = [];

    private async Task ExecuteMessageCommandAsync(ImapCommand c)
    {
        switch (c.Name)
        {
            case "FETCH":
                await FetchAsync(c);
                return;
            case "STORE":
                await StoreAsync(c);
                return;
            case "SEARCH":
                await SearchAsync(c);
                return;
            case "COPY" or "MOVE":
                await CopyAsync(c, move: c.Name == "MOVE");
                return;
            case "EXPUNGE":
                if (_readOnly)
                {
                    W.Raw(c.Tag + " NO [READ-ONLY] Mailbox is read-only\r\n");
                    return;
                }

                await ExpungeAsync(c.Uid ? Select(c.Sequence!, uid: true).Select(i => _messages[i].Uid).ToList() : null, report: true);
                Ok(c, "EXPUNGE completed");
                return;
            case "CLOSE":
                // RFC 9051 §6.4.1: expunge silently (unless read-only), then deselect.
                if (!_readOnly)
                {
                    await _services.Store.ExpungeAsync(_account!.Id, _selected!.Id, null, Closed);
                }

                Deselect();
                Ok(c, "CLOSE completed");
                return;
            case "UNSELECT":
                Deselect();
                Ok(c, "UNSELECT completed");
                return;
            default:
                await BadAsync(c.Tag, "Unknown command");
                return;
        }
    }

    /// <summary>The indexes into <see cref="_messages"/> a sequence set names, ascending (RFC 9051 §9: "*" is the last).</summary>
    private List<int> Select(SequenceSet set, bool uid)
    {
        var result = new List<int>();
        if (_messages.Count == 0)
        {
            return result;
        }

        if (uid)
        {
            var largest = (uint)Math.Min(uint.MaxValue - 1, _messages[^1].Uid);
            for (var i = 0; i < _messages.Count; i++)
            {
                if (set.Contains((uint)_messages[i].Uid, largest))
                {
                    result.Add(i);
                }
            }

            return result;
        }

        for (var i = 0; i < _messages.Count; i++)
        {
            if (set.Contains((uint)(i + 1), (uint)_messages.Count))
            {
                result.Add(i);
            }
        }

        return result;
    }

    /// <summary>RFC 9051 §6.4.5 with message numbers that do not exist: BAD (sequence) or nothing (UID).</summary>
    private bool SequenceInRange(SequenceSet set)
    {
        foreach (var (first, last) in set.Ranges)
        {
            if ((first != SequenceSet.Star && first > _messages.Count) || (last != SequenceSet.Star && last > _messages.Count))
            {
                return false;
            }
        }

        return true;
    }

    private async Task FetchAsync(ImapCommand c)
    {
        if (!c.Uid && !SequenceInRange(c.Sequence!))
        {
            await BadAsync(c.Tag, "Invalid message sequence number");
            return;
        }

        var items = c.FetchItems!;
        var needsContent = items.Any(i => i.Kind is FetchKind.Envelope or FetchKind.BodyStructure or FetchKind.Body or FetchKind.Section);
        var setsSeen = !_readOnly && items.Any(i => i.Kind == FetchKind.Section && !i.Peek);
        foreach (var index in Select(c.Sequence!, c.Uid))
        {
            var info = _messages[index];
            var flagsChanged = false;
            if (setsSeen && !info.Flags.HasFlag(MessageFlags.Seen))
            {
                // RFC 9051 §6.4.5: BODY[...] sets \Seen; the new flags go out in this FETCH response.
                var stored = await _services.Store.StoreFlagsAsync(_account!.Id, _selected!.Id, [info.Uid], new FlagChange { Mode = FlagChangeMode.Add, Flags = MessageFlags.Seen }, Closed);
                if (stored.Count == 1)
                {
                    info = _messages[index] = stored[0];
                    flagsChanged = true;
                }
            }

            Stream? content = null;
            MessageStructure? structure = null;
            try
            {
                if (needsContent)
                {
                    content = await OpenSeekableAsync(info);
                    if (content is null)
                    {
                        // Expunged by another session meanwhile: RFC 9051 §6.4.5 lets the server skip it.
                        continue;
                    }

                    if (items.Any(i => i.Kind is FetchKind.Envelope or FetchKind.BodyStructure or FetchKind.Body || (i.Kind == FetchKind.Section && (i.Part.Count > 0 || i.Text is SectionText.HeaderFields or SectionText.HeaderFieldsNot))))
                    {
                        structure = MessageStructure.Parse(content, Closed);
                    }
                }

                await WriteFetchAsync(index, info, items, c.Uid, flagsChanged, content, structure);
            }
            finally
            {
                if (content is not null)
                {
                    await content.DisposeAsync();
                }
            }
        }

        Ok(c, (c.Uid ? "UID " : string.Empty) + "FETCH completed");
    }

    private async Task WriteFetchAsync(int index, MailMessageInfo info, IReadOnlyList<FetchItem> items, bool uid, bool flagsChanged, Stream? content, MessageStructure? structure)
    {
        var w = W;
        w.Raw("* ").Number(index + 1).Raw(" FETCH (");
        var first = true;
        void Next()
        {
            if (!first)
            {
                w.Sp();
            }

            first = false;
        }

        // RFC 9051 §6.4.8: UID FETCH always returns UID.
        if (uid && !items.Any(i => i.Kind == FetchKind.Uid))
        {
            Next();
            w.Raw("UID ").Number(info.Uid);
        }

        if (flagsChanged && !items.Any(i => i.Kind == FetchKind.Flags))
        {
            Next();
            WriteFlags(w, info);
        }

        foreach (var item in items)
        {
            Next();
            switch (item.Kind)
            {
                case FetchKind.Flags:
                    WriteFlags(w, info);
                    break;
                case FetchKind.Uid:
                    w.Raw("UID ").Number(info.Uid);
                    break;
                case FetchKind.InternalDate:
                    w.Raw("INTERNALDATE ").DateTime(info.InternalDate);
                    break;
                case FetchKind.Size:
                    w.Raw("RFC822.SIZE ").Number(info.Size);
                    break;
                case FetchKind.Envelope:
                    w.Raw("ENVELOPE ");
                    structure!.WriteEnvelope(w);
                    break;
                case FetchKind.BodyStructure:
                    w.Raw("BODYSTRUCTURE ");
                    structure!.WriteBodyStructure(w, extensible: true);
                    break;
                case FetchKind.Body:
                    w.Raw("BODY ");
                    structure!.WriteBodyStructure(w, extensible: false);
                    break;
                default:
                    w.Raw(item.ResponseName).Sp();
                    await WriteSectionAsync(w, item, content!, structure);
                    break;
            }
        }

        w.Raw(")\r\n");
    }

    private async Task WriteSectionAsync(ImapWriter w, FetchItem item, Stream content, MessageStructure? structure)
    {
        long start;
        long length;
        byte[]? generated = null;
        if (structure is null)
        {
            // The whole message, its header or its text, without a MIME parse.
            (start, length) = item.Text switch
            {
                SectionText.All => (0L, content.Length),
                _ => HeaderSplit(content, item.Text),
            };
        }
        else if (!structure.TryResolve(item, out start, out length, out generated))
        {
            // RFC 9051 §6.4.5: a section that does not exist is an empty string.
            w.Raw("\"\"");
            return;
        }

        // RFC 9051 §6.4.5: <origin.octets>; an origin past the end is an empty string.
        if (item.PartialStart is { } origin)
        {
            var skip = Math.Min(origin, length);
            start += skip;
            length = Math.Min(length - skip, item.PartialLength!.Value);
        }

        w.LiteralHeader(length);
        if (generated is not null)
        {
            w.Raw(generated.AsSpan((int)(start - 0), (int)length));
            return;
        }

        content.Position = start;
        var chunk = ArrayPool<byte>.Shared.Rent(16384);
        try
        {
            var left = length;
            while (left > 0)
            {
                var read = await content.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, left)), Closed);
                if (read == 0)
                {
                    throw new IOException("The stored message is shorter than its structure says.");
                }

                w.Raw(chunk.AsSpan(0, read));
                left -= read;
                if (left > 0)
                {
                    // Stream rather than buffer: the pipe applies back-pressure.
                    await FlushAsync();
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <summary>HEADER or TEXT of the top-level message without MimeKit's structure: up to and after the first empty line.</summary>
    private static (long Start, long Length) HeaderSplit(Stream content, SectionText text)
    {
        content.Position = 0;
        long position = 0;
        var lineStart = true;
        int b;
        var end = content.Length;
        while ((b = content.ReadByte()) >= 0)
        {
            position++;
            if (b == '\n')
            {
                if (lineStart)
                {
                    end = position;
                    break;
                }

                lineStart = true;
            }
            else if (b != '\r')
            {
                lineStart = false;
            }
        }

        return text == SectionText.Header ? (0, end) : (end, content.Length - end);
    }

    private static void WriteFlags(ImapWriter w, MailMessageInfo info)
    {
        w.Raw("FLAGS (").Raw(FlagText(info)).Raw(")");
    }

    private static string FlagText(MailMessageInfo info)
    {
        var names = new List<string>();
        if (info.Flags.HasFlag(MessageFlags.Seen))
        {
            names.Add("\\Seen");
        }

        if (info.Flags.HasFlag(MessageFlags.Answered))
        {
            names.Add("\\Answered");
        }

        if (info.Flags.HasFlag(MessageFlags.Flagged))
        {
            names.Add("\\Flagged");
        }

        if (info.Flags.HasFlag(MessageFlags.Deleted))
        {
            names.Add("\\Deleted");
        }

        if (info.Flags.HasFlag(MessageFlags.Draft))
        {
            names.Add("\\Draft");
        }

        names.AddRange(info.Keywords);
        return string.Join(' ', names);
    }

    /// <summary>The message as a seekable stream (MimeKit's persistent parse and section ranges need one).</summary>
    private async Task<Stream?> OpenSeekableAsync(MailMessageInfo info)
    {
        var stream = await _services.Store.OpenMessageAsync(_account!.Id, _selected!.Id, info.Uid, Closed);
        if (stream is null || stream.CanSeek)
        {
            return stream;
        }

        await using (stream)
        {
            Stream copy = info.Size <= InMemoryMessage
                ? new MemoryStream((int)info.Size)
                : new FileStream(Path.GetTempFileName(), FileMode.Create, FileAccess.ReadWrite, FileShare.None, 16384, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
            await stream.CopyToAsync(copy, Closed);
            copy.Position = 0;
            return copy;
        }
    }

    private async Task StoreAsync(ImapCommand c)
    {
        if (!c.Uid && !SequenceInRange(c.Sequence!))
        {
            await BadAsync(c.Tag, "Invalid message sequence number");
            return;
        }

        if (_readOnly)
        {
            W.Raw(c.Tag + " NO [READ-ONLY] Mailbox is read-only\r\n");
            return;
        }

        var indexes = Select(c.Sequence!, c.Uid);
        var action = c.Store!;
        var (flags, keywords) = Flags(action.Flags);
        var change = new FlagChange
        {
            Mode = action.Mode switch { StoreMode.Add => FlagChangeMode.Add, StoreMode.Remove => FlagChangeMode.Remove, _ => FlagChangeMode.Replace },
            Flags = flags,
            Keywords = keywords,
        };
        var uids = indexes.Select(i => _messages[i].Uid).ToList();
        var stored = uids.Count == 0 ? [] : await _services.Store.StoreFlagsAsync(_account!.Id, _selected!.Id, uids, change, Closed);
        var byUid = stored.ToDictionary(m => m.Uid);
        foreach (var index in indexes)
        {
            if (!byUid.TryGetValue(_messages[index].Uid, out var info))
            {
                continue;
            }

            _messages[index] = info;
            if (!action.Silent)
            {
                var w = W;
                w.Raw("* ").Number(index + 1).Raw(" FETCH (");
                WriteFlags(w, info);
                if (c.Uid)
                {
                    w.Raw(" UID ").Number(info.Uid);
                }

                w.Raw(")\r\n");
            }
        }

        Ok(c, (c.Uid ? "UID " : string.Empty) + "STORE completed");
    }

    private async Task CopyAsync(ImapCommand c, bool move)
    {
        if (!c.Uid && !SequenceInRange(c.Sequence!))
        {
            await BadAsync(c.Tag, "Invalid message sequence number");
            return;
        }

        if (move && _readOnly)
        {
            W.Raw(c.Tag + " NO [READ-ONLY] Mailbox is read-only\r\n");
            return;
        }

        var target = await _services.Store.GetFolderAsync(_account!.Id, c.Mailbox!, Closed);
        if (target is null)
        {
            W.Raw(c.Tag + " NO [TRYCREATE] No such mailbox\r\n");
            return;
        }

        var uids = Select(c.Sequence!, c.Uid).Select(i => _messages[i].Uid).ToList();
        var prefix = c.Uid ? "UID " : string.Empty;
        if (uids.Count == 0)
        {
            Ok(c, prefix + c.Name + " completed");
            return;
        }

        var result = move
            ? await _services.Store.MoveMessagesAsync(_account.Id, _selected!.Id, uids, target.Id, Closed)
            : await _services.Store.CopyMessagesAsync(_account.Id, _selected!.Id, uids, target.Id, Closed);
        switch (result.Status)
        {
            case CopyStatus.NoTarget:
                W.Raw(c.Tag + " NO [TRYCREATE] No such mailbox\r\n");
                return;
            case CopyStatus.OverQuota:
                W.Raw(c.Tag + " NO [OVERQUOTA] Quota exceeded\r\n");
                return;
        }

        // RFC 4315 §3: COPYUID uidvalidity source-uids target-uids.
        var code = "COPYUID " + result.UidValidity + " " + string.Join(',', result.Uids.Select(u => u.Source)) + " " + string.Join(',', result.Uids.Select(u => u.Target));
        if (move)
        {
            // RFC 6851 §4.3: COPYUID in an untagged OK, then the EXPUNGEs, then the tagged OK.
            W.Raw("* OK [" + code + "] Moved\r\n");
            ReportExpunged(result.Uids.Select(u => u.Source).ToHashSet());
            Ok(c, prefix + "MOVE completed");
            return;
        }

        if (_selected!.Id == target.Id)
        {
            await SyncAsync(reportExpunges: c.Uid);
        }

        W.Raw(c.Tag + " OK [" + code + "] " + prefix + "COPY completed\r\n");
    }

    private async Task ExpungeAsync(IReadOnlyCollection<long>? uids, bool report)
    {
        var expunged = await _services.Store.ExpungeAsync(_account!.Id, _selected!.Id, uids, Closed);
        if (report)
        {
            ReportExpunged(expunged.ToHashSet());
        }
    }

    /// <summary>"* n EXPUNGE" for each, highest sequence number first so the numbers stay valid (RFC 9051 §7.5.1).</summary>
    private void ReportExpunged(HashSet<long> uids)
    {
        for (var i = _messages.Count - 1; i >= 0; i--)
        {
            if (uids.Contains(_messages[i].Uid))
            {
                W.Raw("* ").Number(i + 1).Raw(" EXPUNGE\r\n");
                _messages.RemoveAt(i);
            }
        }
    }

    private async Task SearchAsync(ImapCommand c)
    {
        var program = c.Search!;
        if (program.Charset is not null and not ("UTF-8" or "US-ASCII"))
        {
            // RFC 9051 §6.4.4: BADCHARSET lists what is supported.
            W.Raw(c.Tag + " NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n");
            return;
        }

        var matches = new List<int>();
        var needsContent = NeedsContent(program.Criteria);
        for (var i = 0; i < _messages.Count; i++)
        {
            MimeMessage? message = null;
            if (needsContent)
            {
                await using var content = await OpenSeekableAsync(_messages[i]);
                if (content is null)
                {
                    continue;
                }

                message = await MimeMessage.LoadAsync(content, Closed);
            }

            if (Matches(program.Criteria, i, message))
            {
                matches.Add(i);
            }
        }

        var numbers = matches.Select(i => c.Uid ? _messages[i].Uid : i + 1).ToList();
        if (program.Return is null && !_rev2)
        {
            W.Raw("* SEARCH" + string.Concat(numbers.Select(n => " " + n.ToString(CultureInfo.InvariantCulture))) + "\r\n");
        }
        else
        {
            // RFC 4731 / RFC 9051 §7.3.4: ESEARCH; no RETURN options (or empty) means ALL.
            var options = program.Return is null or { Count: 0 } ? ["ALL"] : program.Return;
            var w = W;
            w.Raw("* ESEARCH (TAG ").String(c.Tag).Raw(")");
            if (c.Uid)
            {
                w.Raw(" UID");
            }

            if (numbers.Count > 0)
            {
                if (options.Contains("MIN"))
                {
                    w.Raw(" MIN ").Number(numbers.Min());
                }

                if (options.Contains("MAX"))
                {
                    w.Raw(" MAX ").Number(numbers.Max());
                }

                if (options.Contains("ALL"))
                {
                    w.Raw(" ALL " + Compress(numbers));
                }
            }

            if (options.Contains("COUNT"))
            {
                w.Raw(" COUNT ").Number(numbers.Count);
            }

            w.Crlf();
        }

        Ok(c, (c.Uid ? "UID " : string.Empty) + "SEARCH completed");
    }

    /// <summary>A sequence set for ascending numbers: 1:3,7,9:10.</summary>
    private static string Compress(List<long> numbers)
    {
        var parts = new List<string>();
        var start = numbers[0];
        var previous = start;
        foreach (var n in numbers.Skip(1).Append(long.MaxValue))
        {
            if (n == previous + 1)
            {
                previous = n;
                continue;
            }

            parts.Add(start == previous ? start.ToString(CultureInfo.InvariantCulture) : start.ToString(CultureInfo.InvariantCulture) + ":" + previous.ToString(CultureInfo.InvariantCulture));
            start = previous = n;
        }

        return string.Join(',', parts);
    }

    private static bool NeedsContent(SearchKey key) =>
        key.Kind is SearchKind.Header or SearchKind.Body or SearchKind.Text or SearchKind.SentBefore or SearchKind.SentOn or SearchKind.SentSince
        || key.Children.Any(NeedsContent);

    private bool Matches(SearchKey key, int index, MimeMessage? message)
    {
        var info = _messages[index];
        var date = DateOnly.FromDateTime(info.InternalDate.UtcDateTime);
        var sent = message?.Date is { } d && d != DateTimeOffset.MinValue ? DateOnly.FromDateTime(d.DateTime) : (DateOnly?)null;
        return key.Kind switch
        {
            SearchKind.All => true,
            SearchKind.And => key.Children.All(k => Matches(k, index, message)),
            SearchKind.Or => key.Children.Any(k => Matches(k, index, message)),
            SearchKind.Not => !Matches(key.Children[0], index, message),
            SearchKind.SequenceSet => key.Set!.Contains((uint)(index + 1), (uint)_messages.Count),
            SearchKind.Uid => key.Set!.Contains((uint)info.Uid, (uint)Math.Min(uint.MaxValue - 1, _messages[^1].Uid)),
            SearchKind.Flag => HasFlag(info, key.Flag!),
            SearchKind.NotFlag => !HasFlag(info, key.Flag!),
            SearchKind.New => false,
            SearchKind.Recent => false,
            SearchKind.Old => true,
            SearchKind.Larger => info.Size > key.Number,
            SearchKind.Smaller => info.Size < key.Number,
            SearchKind.Before => date < key.Date,
            SearchKind.On => date == key.Date,
            SearchKind.Since => date >= key.Date,
            SearchKind.SentBefore => sent < key.Date,
            SearchKind.SentOn => sent == key.Date,
            SearchKind.SentSince => sent >= key.Date,
            SearchKind.Header => message is not null && HeaderContains(message, key.Field!, key.Value!),
            SearchKind.Body => message is not null && BodyContains(message, key.Value!),
            SearchKind.Text => message is not null && (BodyContains(message, key.Value!) || message.Headers.Any(h => Contains(h.Value, key.Value!))),
            _ => false,
        };
    }

    private static bool HasFlag(MailMessageInfo info, string flag) => flag switch
    {
        "\\Seen" => info.Flags.HasFlag(MessageFlags.Seen),
        "\\Answered" => info.Flags.HasFlag(MessageFlags.Answered),
        "\\Flagged" => info.Flags.HasFlag(MessageFlags.Flagged),
        "\\Deleted" => info.Flags.HasFlag(MessageFlags.Deleted),
        "\\Draft" => info.Flags.HasFlag(MessageFlags.Draft),
        _ => info.Keywords.Contains(flag, StringComparer.OrdinalIgnoreCase),
    };

    // RFC 9051 §6.4.4: header and text keys match substrings, case-insensitively; an empty HEADER value matches presence.
    private static bool HeaderContains(MimeMessage message, string field, string value) =>
        message.Headers.Any(h => h.Field.Equals(field, StringComparison.OrdinalIgnoreCase) && (value.Length == 0 || Contains(h.Value, value)));

    private static bool BodyContains(MimeMessage message, string value) =>
        message.BodyParts.OfType<TextPart>().Any(p => Contains(p.Text, value));

    private static bool Contains(string? haystack, string needle) =>
        haystack is not null && haystack.Contains(needle, StringComparison.OrdinalIgnoreCase);
}
