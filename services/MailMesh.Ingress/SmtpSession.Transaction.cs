using System.Diagnostics;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Ingress.Acceptance;
using MailMesh.Ingress.Memory;
using MailMesh.Smtp;
using MailMesh.Storage;

namespace MailMesh.Ingress;

/// <summary>The mail transaction: MAIL, RCPT, DATA and BDAT (RFC 5321 §3.3, RFC 3030), and the hand-over to the acceptor.</summary>
internal sealed partial class SmtpSession
{
    /// <summary>The first allocation of a message buffer: the Received header and a short message.</summary>
    private const int InitialContentCapacity = 4096;

    /// <summary>The least free budget for a message to start (MAIL, DATA, first BDAT) when no SIZE is declared.</summary>
    private const long MinimumHeadroom = 64 * 1024;

    private bool Mail(SmtpCommand command)
    {
        if (!MailParameters.TryParse(command.Parameters, out var parameters, out var error))
        {
            return ProtocolError(error);
        }

        if (RequiresAuth && _authenticatedUser is null)
        {
            // RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication.
            return ProtocolError(SmtpReplies.AuthenticationRequired);
        }

        if (parameters.RequireTls && !IsTls)
        {
            // RFC 8689 §4.1: REQUIRETLS only over TLS (and it is not advertised otherwise).
            return ProtocolError(SmtpReplies.RequireTlsNeedsTls);
        }

        if (command.Mailbox is { IsInternational: true } && !parameters.SmtpUtf8)
        {
            // RFC 6531 §3.4: a UTF-8 address needs the SMTPUTF8 parameter.
            return ProtocolError(SmtpReplies.Utf8AddressNeedsSmtpUtf8);
        }

        if (parameters.Size > _options.MaxMessageSize)
        {
            // RFC 1870 §6.2: a declared size over the fixed limit is refused at MAIL with 552.
            Write(SmtpReplies.MessageTooBig);
            return false;
        }

        if (!BudgetHasRoomFor(parameters.Size))
        {
            // RFC 1870 §6.2: a declared size the server cannot take now is 452 at MAIL. The declaration is only checked
            // against what is free, never allocated.
            RefuseForBudget("mail");
            return false;
        }

        var sender = command.IsNullPath ? string.Empty : command.Mailbox!.Address;
        var activity = IngressTelemetry.Source.StartActivity("smtp.transaction", ActivityKind.Internal, _sessionActivity?.Context ?? default);
        activity?.SetTag("mailmesh.sender", sender);
        _transaction?.End(null);
        _transaction = new MailTransaction(sender, parameters, activity);
        _state = SmtpState.MailGiven;
        Write(SmtpReplies.SenderOk);
        return false;
    }

    private async Task<bool> RcptAsync(SmtpCommand command)
    {
        var transaction = _transaction!;
        if (!RcptParameters.TryParse(command.Parameters, out var parameters, out var error))
        {
            return ProtocolError(error);
        }

        if (command.Mailbox is { IsInternational: true } && !transaction.Parameters.SmtpUtf8)
        {
            // RFC 6531 §3.4: UTF-8 recipients only in an SMTPUTF8 transaction.
            return ProtocolError(SmtpReplies.Utf8AddressNeedsSmtpUtf8);
        }

        var recipients = transaction.Recipients;
        if (recipients.Count >= _options.MaxRecipients)
        {
            // RFC 5321 §4.5.3.1.10: 452 and the client sends the rest in another transaction.
            Write(SmtpReplies.TooManyRecipients);
            return false;
        }

        // RFC 5321 §4.1.1.3: <Postmaster> without a domain is this server's postmaster. Every other recipient is the
        // parsed, normalised address (domain lower-cased, IDNs as A-labels): exactly what Policy checks is what is
        // stored and routed.
        var address = command.IsPostmaster ? "postmaster@" + HostName.ToLowerInvariant() : command.Mailbox!.Address;
        if (recipients.Exists(r => string.Equals(r.Address, address, StringComparison.Ordinal)))
        {
            // A duplicate is acknowledged and delivered once.
            Write(SmtpReplies.RecipientOk);
            return false;
        }

        PolicyDecision? answer = null;
        var decision = await CheckPolicyAsync("recipient", async ct => answer = await _policy.CheckAsync(
            new CheckRecipient
            {
                ClientAddress = _clientAddress,
                Sender = transaction.Sender,
                Recipient = address,
                AuthenticatedUser = _authenticatedUser,
                Helo = _helo,
                AcceptedRecipients = recipients.Count,
            },
            ct));
        if (decision.Reply is not null)
        {
            Write(decision.Reply);
            return false;
        }

        transaction.TraceHeader ??= answer?.TraceHeader;

        recipients.Add(new NewRecipient { Address = address, Notify = parameters.Notify, OriginalRecipient = parameters.OriginalRecipient });
        _state = SmtpState.RcptGiven;
        Write(SmtpReplies.RecipientOk);
        return false;
    }

    /// <summary>
    /// True when the buffered-bytes budget has room to start a message: at least <see cref="MinimumHeadroom"/>, and the
    /// declared SIZE (RFC 1870) if there is one. Nothing is reserved here: buffers reserve as octets arrive.
    /// </summary>
    private bool BudgetHasRoomFor(long? declaredSize) =>
        _budget.Available >= Math.Max(Math.Min(declaredSize ?? 0, _options.MemoryBodyThreshold), MinimumHeadroom);

    private void RefuseForBudget(string stage)
    {
        Log.BufferBudgetExhausted(_logger, _clientAddress, stage, _budget.InUse);
        _metrics.BufferBudgetExhausted(stage);
        Write(SmtpReplies.InsufficientStorage);
    }

    /// <summary>
    /// Starts the message with our Received header (RFC 5321 §4.4), for DATA and the first BDAT, in a buffer that starts
    /// small and grows as octets arrive (never sized from the declared SIZE). False when the budget could not give it one.
    /// </summary>
    private bool StartContent()
    {
        var transaction = _transaction!;
        _contentStarted = _time.GetTimestamp();
        _contentOctets = 0;
        var content = new MessageBuffer(
            _budget,
            InitialContentCapacity,
            (int)Math.Min(int.MaxValue, _options.MaxMessageSize + (64 * 1024)),
            new BodySpill(_options.MemoryBodyThreshold, _options.SpillDirectory));
        transaction.StartContent(Guid.CreateVersion7(), _time.GetUtcNow(), content.Exhausted ? null : content);
        if (content.Exhausted)
        {
            return false;
        }

        if (transaction.TraceHeader is { } trace)
        {
            // RFC 7208 §9.1: Received-SPF goes above the Received field this server adds; same buffer, no copy.
            Encoding.UTF8.GetBytes(trace.AsSpan(), content);
        }

        ReceivedHeader.Write(
            content,
            _helo,
            ClientIp,
            HostName,
            ReceivedProtocol(),
            transaction.MessageId,
            transaction.Recipients.Count == 1 ? transaction.Recipients[0].Address : null,
            transaction.ReceivedAt);
        return true;
    }

    /// <summary>The "with" value of the Received header (RFC 3848, RFC 6531 §3.7.3).</summary>
    private string ReceivedProtocol()
    {
        if (!_esmtp)
        {
            return "SMTP";
        }

        var suffix = (IsTls ? "S" : string.Empty) + (_authenticatedUser is not null ? "A" : string.Empty);
        return (_transaction?.Parameters.SmtpUtf8 == true ? "UTF8SMTP" : "ESMTP") + suffix;
    }

    /// <summary>RFC 5321 §4.1.1.4: DATA (the state table has already checked for recipients).</summary>
    private bool Data()
    {
        if (_transaction!.Parameters.Body == SmtpBodyType.BinaryMime)
        {
            // RFC 3030 §3: BINARYMIME content cannot be dot-stuffed text; it comes with BDAT only.
            return ProtocolError(SmtpReplies.BinaryMimeNeedsBdat);
        }

        if (!BudgetHasRoomFor(_transaction.Parameters.Size) || !StartContent())
        {
            // 452 4.3.1 before the 354: nothing was read, the transaction stays and the client may try again.
            _transaction.ReleaseContent();
            RefuseForBudget("data");
            return false;
        }

        _data.Reset();
        _state = SmtpState.Data;
        _mode = ReadMode.Data;
        Write(SmtpReplies.StartMailInput);
        return false;
    }

    /// <summary>
    /// RFC 3030 §2: BDAT chunk-size [LAST]; the chunk's octets follow the command line exactly. Whatever the reply, the
    /// chunk is read: a refused BDAT's octets are discarded (RFC 3030 §2: "the receiver SMTP MUST be prepared to accept
    /// and discard additional BDAT chunks") and never parsed as commands, which would let a chunk carry a second,
    /// smuggled transaction.
    /// </summary>
    private async Task<bool> BdatAsync(SmtpCommand command)
    {
        // Not offered after HELO (RFC 5321 §4.2.4: 502), or out of sequence (the state table: 503, or 554 with no
        // accepted recipient).
        var refusal = !_esmtp && _state != SmtpState.Connected ? SmtpReplies.NotImplemented : SmtpStateTable.Check(_state, SmtpCommandKind.Bdat);
        if (refusal is not null)
        {
            return command.ChunkSize == 0 ? ProtocolError(refusal) : StartDiscard(command.ChunkSize, refusal);
        }

        var transaction = _transaction!;
        var size = command.ChunkSize;
        if (_state != SmtpState.Chunking)
        {
            _state = SmtpState.Chunking;
            _contentStarted = _time.GetTimestamp();
            _contentOctets = 0;
            if (!BudgetHasRoomFor(transaction.Parameters.Size) || !StartContent())
            {
                // 452 4.3.1 for this chunk and every further one of the transaction (RFC 3030 §2); the octets are read
                // and discarded, nothing is held.
                Log.BufferBudgetExhausted(_logger, _clientAddress, "bdat", _budget.InUse);
                _metrics.BufferBudgetExhausted("bdat");
                transaction.FailChunks(SmtpReplies.InsufficientStorage, "buffer_budget");
            }
        }

        transaction.LastChunk = command.IsLastChunk;

        // RFC 1870 / RFC 3030 §4.2: the size is checked per chunk; an oversized chunk is read and thrown away (its
        // length is known), and the transaction fails.
        if (transaction.ChunkError is null && _contentOctets + size > _options.MaxMessageSize)
        {
            transaction.FailChunks(SmtpReplies.MessageTooBig, "message_too_big");
        }

        if (size == 0)
        {
            return await EndOfChunkAsync();
        }

        _mode = ReadMode.Chunk(size);
        return false;
    }

    /// <summary>Reads a refused BDAT's chunk before answering: the octets are counted for the data rate, never kept.</summary>
    private bool StartDiscard(long size, SmtpReply refusal)
    {
        _discardReply = refusal;
        _mode = ReadMode.DiscardChunk(size);
        _contentStarted = _time.GetTimestamp();
        _contentOctets = 0;
        return false;
    }

    private bool EndOfDiscardedChunk()
    {
        var refusal = _discardReply!;
        _discardReply = null;
        _mode = ReadMode.Command;
        return ProtocolError(refusal);
    }

    /// <summary>A BDAT line whose chunk-size cannot be read: the octets that follow cannot be skipped, so close.</summary>
    private bool BdatSyntaxError()
    {
        Log.BdatSyntax(_logger, _clientAddress);
        _sessionActivity?.SetTag("error.type", "bdat_syntax");
        EndTransaction("bdat_syntax");
        Write(SmtpReplies.SyntaxBdat);
        return true;
    }

    private async Task<bool> EndOfChunkAsync()
    {
        _mode = ReadMode.Command;
        var transaction = _transaction!;
        // The last chunk writes a spilled body's staged tail now (Complete), so a spill file that cannot take it is a
        // refusal here, not a failure inside the commit.
        if (transaction.ChunkError is null && transaction.Content is { } chunked && (chunked.Exhausted || (transaction.LastChunk && !chunked.Complete())))
        {
            // The budget ran out while the chunk arrived: the message cannot be held, so it fails (never a silent drop).
            Log.BufferBudgetExhausted(_logger, _clientAddress, "content", _budget.InUse);
            _metrics.BufferBudgetExhausted("content");
            transaction.FailChunks(SmtpReplies.InsufficientStorage, "buffer_budget");
        }

        if (!transaction.LastChunk)
        {
            Write(transaction.ChunkError ?? SmtpReplies.ChunkReceived(_contentOctets));
            return false;
        }

        // BDAT LAST ends the transaction whatever the reply (RFC 3030 §2).
        _state = SmtpState.Greeted;
        if (transaction.ChunkError is { } error)
        {
            _acceptor.RecordRefusal(MessageOrigin.Smtp, transaction.Sender, _clientAddress, error, transaction.ChunkErrorType!);
            Write(error);
            EndTransaction(transaction.ChunkErrorType);
            return false;
        }

        var body = transaction.Parameters.Body switch
        {
            SmtpBodyType.BinaryMime => BodyType.BinaryMime,
            SmtpBodyType.EightBitMime => BodyType.EightBitMime,
            _ => transaction.Content!.HasEightBit ? BodyType.EightBitMime : BodyType.SevenBit,
        };
        await AcceptAsync(body);
        return false;
    }

    /// <summary>RFC 5321 §4.1.1.4: the end of data ends the transaction whatever the reply.</summary>
    private async Task<bool> EndOfDataAsync()
    {
        _mode = ReadMode.Command;
        _state = SmtpState.Greeted;
        var transaction = _transaction!;
        // Complete writes a spilled body's staged tail: a spill file that cannot take it is refused here with 452, not
        // a failure inside the commit (which closed the session with 421).
        var exhausted = transaction.Content is not { } content || !content.Complete();
        if (_data.Error is not null || exhausted)
        {
            var refusal = _data.Error ?? SmtpReplies.InsufficientStorage;
            var errorType = _data.Error is null ? "buffer_budget"
                : _data.SawBareLineEnding && !_options.NormalizeBareLineFeeds ? "bare_line_ending"
                : _data.SizeExceeded ? "message_too_big"
                : "line_too_long";
            if (_data.Error is null)
            {
                Log.BufferBudgetExhausted(_logger, _clientAddress, "content", _budget.InUse);
                _metrics.BufferBudgetExhausted("content");
            }

            _acceptor.RecordRefusal(MessageOrigin.Smtp, transaction.Sender, _clientAddress, refusal, errorType);
            Write(refusal);
            EndTransaction(errorType);
            return false;
        }

        await AcceptAsync(transaction.Parameters.Body == SmtpBodyType.EightBitMime || _data.Has8BitData ? BodyType.EightBitMime : BodyType.SevenBit);
        return false;
    }

    private async Task AcceptAsync(BodyType body)
    {
        var transaction = _transaction!;
        var parameters = transaction.Parameters;
        var request = new AcceptRequest
        {
            MessageId = transaction.MessageId,
            ReceivedAt = transaction.ReceivedAt,
            Sender = transaction.Sender,
            Recipients = [.. transaction.Recipients],
            Content = transaction.Content!.IsSpilled ? ReadOnlyMemory<byte>.Empty : transaction.Content.WrittenMemory,
            ContentSource = transaction.Content.IsSpilled ? transaction.Content.ContentSource() : null,
            ContentFrom = transaction.Content.IsSpilled ? transaction.Content.ContentSource : null,
            AddReceivedHeader = false,
            ClientAddress = _clientAddress,
            ClientIp = ClientIp,
            ClientHelo = _helo,
            AuthenticatedUser = _authenticatedUser,
            Origin = MessageOrigin.Smtp,
            Protocol = ReceivedProtocol(),
            BodyType = body,
            SmtpUtf8 = parameters.SmtpUtf8,
            RequireTls = parameters.RequireTls,
            EnvelopeId = parameters.EnvelopeId,
            Ret = parameters.Ret,
            TraceParent = transaction.Activity?.Id,
        };

        // The transaction's span is current while the message is checked, stored and announced.
        var previous = Activity.Current;
        Activity.Current = transaction.Activity ?? previous;
        AcceptResult result;
        try
        {
            result = await _acceptor.AcceptAsync(
                request,
                async (accepted, ct) =>
                {
                    // The message is committed: its buffer goes back to the pool and the budget before the 250 is sent.
                    // 250 goes out as soon as the commit returned; the announcement follows.
                    transaction.ReleaseContent();
                    Write(accepted.Reply);
                    await _output.FlushAsync(ct);
                },
                _graceEnded);
        }
        finally
        {
            Activity.Current = previous;
        }

        if (!result.Accepted || result.Duplicate)
        {
            Write(result.Reply);
        }

        EndTransaction(result.ErrorType);
    }

    /// <summary>Ends the mail transaction, if any (RSET, EHLO, STARTTLS, end of data, end of session).</summary>
    private void EndTransaction(string? errorType)
    {
        _transaction?.End(errorType);
        _transaction = null;
        if (_mode.Kind is ReadModeKind.Data or ReadModeKind.Chunk)
        {
            _mode = ReadMode.Command;
        }
    }
}
