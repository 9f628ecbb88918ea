namespace MailMesh.Storage.Mailboxes;

/// <summary>
/// A read-only, seekable stream over a message as the store keeps it: the recipient's header prefix, then the shared
/// body, without concatenating them into a new array (a large body would otherwise be held twice per read).
/// </summary>
internal sealed class PrefixedStream(byte[] prefix, byte[] body) : Stream
{
    private long _position;

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => prefix.Length + (long)body.Length;

    public override long Position
    {
        get => _position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _position = value;
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = 0;
        while (read < buffer.Length && _position < Length)
        {
            var (source, start) = _position < prefix.Length ? (prefix, (int)_position) : (body, (int)(_position - prefix.Length));
            var chunk = Math.Min(buffer.Length - read, source.Length - start);
            source.AsSpan(start, chunk).CopyTo(buffer[read..]);
            read += chunk;
            _position += chunk;
        }

        return read;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<int>(cancellationToken) : ValueTask.FromResult(Read(buffer.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => Length + offset,
        };
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
