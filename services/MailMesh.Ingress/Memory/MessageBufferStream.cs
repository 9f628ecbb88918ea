using System.Buffers;

namespace MailMesh.Ingress.Memory;

/// <summary>
/// A write-only stream into a <see cref="MessageBuffer"/>, for writers that want a <see cref="Stream"/> (MimeKit composing
/// a JSON submission). It stops the writer with <see cref="MessageBufferFullException"/> as soon as the content passes
/// <paramref name="limit"/> octets or the buffer's budget is exhausted, instead of letting it write on into a buffer
/// that discards.
/// </summary>
internal sealed class MessageBufferStream(MessageBuffer buffer, long limit) : Stream
{
    /// <summary>Octets written, including any that did not fit.</summary>
    public long Written { get; private set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => Written;

    public override long Position
    {
        get => Written;
        set => throw new NotSupportedException();
    }

    public override void Write(ReadOnlySpan<byte> data)
    {
        Written += data.Length;
        if (Written > limit)
        {
            throw new MessageBufferFullException(tooLarge: true);
        }

        buffer.Write(data);
        if (buffer.Exhausted)
        {
            throw new MessageBufferFullException(tooLarge: false);
        }
    }

    public override void Write(byte[] data, int offset, int count) => Write(data.AsSpan(offset, count));

    public override void WriteByte(byte value) => Write([value]);

    public override Task WriteAsync(byte[] data, int offset, int count, CancellationToken cancellationToken)
    {
        Write(data.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        Write(data.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override int Read(byte[] data, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>The content went past its limit (<see cref="TooLarge"/>) or the budget could not hold it.</summary>
internal sealed class MessageBufferFullException(bool tooLarge) : Exception(tooLarge ? "The content is larger than its limit." : "The buffered-bytes budget is used up.")
{
    public bool TooLarge { get; } = tooLarge;
}
