namespace MailMesh.Ingress.Memory;

/// <summary>
/// The shape every stream of message content shares (a spill file's view, a header before a body, two parts one after
/// the other, a decoded JSON string): read-only, seekable, with a position of its own. A subclass reads at
/// <see cref="Stream.Position"/>, calls <see cref="Advance"/> for what it read, and says in <see cref="MoveTo"/> what a
/// seek means for it.
/// </summary>
internal abstract class ReadOnlyContentStream : Stream
{
    private long _position;

    public sealed override bool CanRead => true;

    public sealed override bool CanSeek => true;

    public sealed override bool CanWrite => false;

    public sealed override long Position
    {
        get => _position;
        set => _position = MoveTo(Math.Clamp(value, 0, Length));
    }

    public sealed override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public sealed override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Synchronous unless overridden (content in memory).</summary>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Read(buffer.Span));

    public sealed override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => Length + offset,
        };
        return _position;
    }

    public sealed override void Flush()
    {
    }

    public sealed override void SetLength(long value) => throw new NotSupportedException();

    public sealed override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <summary>Moves the position on by what a read returned.</summary>
    protected void Advance(int count) => _position += count;

    /// <summary>Prepares reading from <paramref name="target"/> (within 0 and Length) and returns the position reached.</summary>
    protected virtual long MoveTo(long target) => target;
}
