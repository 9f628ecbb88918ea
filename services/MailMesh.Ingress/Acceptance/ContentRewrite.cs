using System.Buffers;
using System.Text;
using MailMesh.Ingress.Memory;
using MailMesh.Policy.Content;
using MailMesh.Storage;

namespace MailMesh.Ingress.Acceptance;

/// <summary>
/// Where the client's own content lies in a submission (after this server's trace fields), for the content checks to
/// read, and the message rebuilt after them: this server's trace fields, the checks' headers (Authentication-Results
/// first), the client's header section without the fields that would speak for this server, then the rest, which is
/// never copied when it is streamed (a spilled SMTP message keeps its memory map).
/// </summary>
internal sealed class ContentRewrite
{
    /// <summary>How much of a spilled message's client header section is read to rewrite it; fields past it stay.</summary>
    internal const int HeadLimit = 256 * 1024;

    private readonly AcceptRequest _request;
    private readonly MessageContentSource? _source;
    private readonly ReadOnlyMemory<byte> _content;
    private readonly int _ownLength;

    private ContentRewrite(AcceptRequest request, MessageContentSource? source, ReadOnlyMemory<byte> content, int ownLength, long length)
    {
        _request = request;
        _source = source;
        _content = content;
        _ownLength = ownLength;
        Length = length;
    }

    /// <summary>The client's content length in octets.</summary>
    public long Length { get; }

    /// <summary>
    /// The client's content of an SMTP submission (<paramref name="content"/> or the spilled <paramref name="source"/>,
    /// starting with this server's trace fields) or of an HTTP one (<see cref="AcceptRequest.Content"/> and its
    /// <see cref="AcceptRequest.ContentTail"/>).
    /// </summary>
    public static ContentRewrite For(AcceptRequest request, MessageContentSource? source, ReadOnlyMemory<byte> content)
    {
        if (request.AddReceivedHeader)
        {
            return new ContentRewrite(request, null, request.Content, 0, request.Content.Length + (request.ContentTail?.Length ?? 0));
        }

        if (source is null)
        {
            var own = HeaderFields.OwnTraceLength(content.Span);
            return new ContentRewrite(request, null, content, own, content.Length - own);
        }

        // Our trace fields are a few hundred octets: the first 16 KiB hold them.
        var head = ReadHead(source, 0, 16 * 1024);
        var ownLength = HeaderFields.OwnTraceLength(head);
        return new ContentRewrite(request, source, ReadOnlyMemory<byte>.Empty, ownLength, source.Length - ownLength);
    }

    /// <summary>A new read-only stream over the client's content.</summary>
    public Stream Open()
    {
        if (_request.AddReceivedHeader)
        {
            var header = new PrefixedContentStream(_content, ReadOnlyMemory<byte>.Empty);
            return _request.ContentTail is { } tail ? new ConcatenatedContentStream(header, tail.Open()) : header;
        }

        return _source is null
            ? new PrefixedContentStream(ReadOnlyMemory<byte>.Empty, _content[_ownLength..])
            : From(_source, _ownLength).Open();
    }

    /// <summary>
    /// The SMTP message rebuilt: our trace fields, <paramref name="headers"/>, the client's header section without the
    /// forged fields, then the rest (in memory: one new array of a message under Ingress:MemoryBodyThreshold; spilled:
    /// a small prefix in memory and the rest of the file, mapped).
    /// </summary>
    public (MessageContentSource? Source, ReadOnlyMemory<byte> Content) RebuildSmtp(string headers, ContentChecks checks)
    {
        if (_source is null)
        {
            var client = _content.Span[_ownLength..];
            var (rewritten, cut) = Rewrite(client, complete: true, checks);
            var inserted = Encoding.UTF8.GetBytes(headers);
            var result = new byte[_ownLength + inserted.Length + rewritten.Length + (client.Length - cut)];
            var span = result.AsSpan();
            _content.Span[.._ownLength].CopyTo(span);
            inserted.CopyTo(span[_ownLength..]);
            rewritten.CopyTo(span[(_ownLength + inserted.Length)..]);
            client[cut..].CopyTo(span[(_ownLength + inserted.Length + rewritten.Length)..]);
            return (null, result);
        }

        var head = ReadHead(_source, 0, _ownLength + HeadLimit);
        var (clientHead, clientCut) = Rewrite(head.AsSpan(_ownLength), complete: head.Length == _source.Length, checks);
        var prefix = Concat(head.AsSpan(0, _ownLength), Encoding.UTF8.GetBytes(headers), clientHead);
        var rest = From(_source, _ownLength + clientCut);
        return (new MessageContentSource(prefix.Length + rest.Length,
            () => new ConcatenatedContentStream(new PrefixedContentStream(prefix, ReadOnlyMemory<byte>.Empty), rest.Open()))
        {
            Map = rest.Map,
            MappedPrefix = rest.Map is null ? ReadOnlyMemory<byte>.Empty : prefix,
        }, ReadOnlyMemory<byte>.Empty);
    }

    /// <summary>The HTTP submission's header part rebuilt (what goes after our Received header): <paramref name="headers"/>
    /// and the client's header section without the forged fields, and the rest of the in-memory content after it.</summary>
    public (byte[] Header, ReadOnlyMemory<byte> Remainder) RebuildHttp(string headers, ContentChecks checks)
    {
        var (rewritten, cut) = Rewrite(_content.Span, complete: true, checks);
        return (Concat([], Encoding.UTF8.GetBytes(headers), rewritten), _content[cut..]);
    }

    /// <summary>The header fields of <paramref name="head"/> up to the end of the header section (or the last complete
    /// field), without the fields <see cref="ContentChecks.IsForged"/> names, and where they end.</summary>
    internal static (byte[] Rewritten, int Cut) Rewrite(ReadOnlySpan<byte> head, bool complete, ContentChecks checks)
    {
        var output = new ArrayBufferWriter<byte>(Math.Max(256, Math.Min(head.Length, 16 * 1024)));
        var position = 0;
        while (HeaderFields.FieldEnd(head, position, complete) is var end and > 0)
        {
            var field = head[position..end];
            if (!IsForged(field, checks))
            {
                output.Write(field);
            }

            position = end;
        }

        return (output.WrittenSpan.ToArray(), position);
    }

    private static bool IsForged(ReadOnlySpan<byte> field, ContentChecks checks)
    {
        var name = HeaderFields.Name(field);
        if (name.Length > 256)
        {
            return false;
        }

        // The name as characters without an allocation; the value is decoded only where it decides (our authserv-id).
        Span<char> chars = stackalloc char[name.Length];
        Encoding.Latin1.GetChars(name, chars);
        var value = Ascii.EqualsIgnoreCase(name, "Authentication-Results"u8) ? HeaderFields.Value(field) : string.Empty;
        return checks.IsForged(chars, value);
    }

    /// <summary>The SMTP source from <paramref name="offset"/> on: the spill file's own view (with its map) when the
    /// session gave one, else a view of the stream.</summary>
    private MessageContentSource From(MessageContentSource source, long offset) =>
        _request.ContentFrom?.Invoke(offset)
        ?? new MessageContentSource(source.Length - offset, () => new OffsetContentStream(source.Open(), offset));

    private static byte[] ReadHead(MessageContentSource source, long offset, int limit)
    {
        var buffer = new byte[(int)Math.Min(limit, source.Length - offset)];
        using var stream = source.Open();
        stream.Position = offset;
        stream.ReadExactly(buffer);
        return buffer;
    }

    private static byte[] Concat(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, ReadOnlySpan<byte> third)
    {
        var all = new byte[first.Length + second.Length + third.Length];
        first.CopyTo(all);
        second.CopyTo(all.AsSpan(first.Length));
        third.CopyTo(all.AsSpan(first.Length + second.Length));
        return all;
    }
}

/// <summary>A seekable stream seen from <c>offset</c> on; disposing it disposes the inner one.</summary>
internal sealed class OffsetContentStream(Stream inner, long offset) : ReadOnlyContentStream
{
    private bool _positioned;

    public override long Length => inner.Length - offset;

    public override int Read(Span<byte> buffer)
    {
        EnsurePositioned();
        var read = inner.Read(buffer);
        Advance(read);
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        EnsurePositioned();
        var read = await inner.ReadAsync(buffer, cancellationToken);
        Advance(read);
        return read;
    }

    protected override long MoveTo(long target)
    {
        inner.Position = offset + target;
        _positioned = true;
        return target;
    }

    private void EnsurePositioned()
    {
        if (!_positioned)
        {
            inner.Position = offset;
            _positioned = true;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
