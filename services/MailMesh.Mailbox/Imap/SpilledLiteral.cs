using System.Buffers;
using MailMesh.Storage.Content;

namespace MailMesh.Mailbox.Imap;

/// <summary>
/// APPEND's message literal (up to <c>Mailbox:MaxMessageSize</c>) written as it arrives into an unlinked file in
/// <c>Mailbox:ContentDirectory</c>, then read by the store through a memory map: the session never holds the message
/// on its heap, whatever its size (the page cache does, reclaimably). Disposed when the command is done.
/// </summary>
internal sealed class SpilledLiteral : IDisposable
{
    private readonly FileStream _file;
    private MappedContent? _mapped;

    private SpilledLiteral(FileStream file, long length)
    {
        _file = file;
        Length = length;
    }

    /// <summary>The octets announced.</summary>
    public long Length { get; }

    /// <summary>The octets received so far.</summary>
    public long Written { get; private set; }

    /// <summary>The whole literal, after <see cref="CompleteAsync"/>.</summary>
    public ReadOnlyMemory<byte> Content => _mapped?.Memory ?? throw new InvalidOperationException("The literal is not complete.");

    public static SpilledLiteral Create(string directory, long length)
    {
        var file = SpillFile.Create(directory, $"append-{Guid.NewGuid():N}.eml", length, 64 * 1024);
        return new SpilledLiteral(file, length);
    }

    /// <summary>Appends the octets of <paramref name="bytes"/> (never more than the rest of the literal).</summary>
    public async ValueTask WriteAsync(ReadOnlySequence<byte> bytes, CancellationToken cancellationToken)
    {
        if (Written + bytes.Length > Length)
        {
            throw new InvalidOperationException("More octets than the literal announced.");
        }

        foreach (var segment in bytes)
        {
            await _file.WriteAsync(segment, cancellationToken);
        }

        Written += bytes.Length;
    }

    /// <summary>Flushes the file and maps it; <see cref="Content"/> is valid until this is disposed.</summary>
    public async ValueTask CompleteAsync(CancellationToken cancellationToken)
    {
        if (Written != Length)
        {
            throw new InvalidOperationException("The literal is incomplete.");
        }

        await _file.FlushAsync(cancellationToken);
        _mapped = new MappedContent(_file, Length);
    }

    public void Dispose()
    {
        ((IDisposable?)_mapped)?.Dispose();
        _file.Dispose();
    }
}
