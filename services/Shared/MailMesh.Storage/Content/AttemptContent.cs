namespace MailMesh.Storage.Content;

/// <summary>
/// The content of a message for one delivery attempt, as one block of memory: the inline content
/// <see cref="ISpool.StartAttemptAsync"/> returned, or, for a message over <see cref="StoredMessage.InlineContentLimit"/>,
/// a local copy streamed from the store (<see cref="ISpool.CopyContentAsync"/>) into a file that is deleted when this is
/// disposed, and memory-mapped. So a 35 MB message costs an attempt page cache, not 35 MB of heap, and concurrent
/// large attempts cannot exhaust the process (issue 7, "a large message is never held whole in memory").
/// </summary>
public sealed class AttemptContent : IAsyncDisposable
{
    private readonly FileStream? _file;
    private readonly MappedContent? _mapped;
    private readonly IDisposable? _lease;

    private AttemptContent(ReadOnlyMemory<byte> memory, FileStream? file, MappedContent? mapped, IDisposable? lease = null)
    {
        Memory = memory;
        _file = file;
        _mapped = mapped;
        _lease = lease;
    }

    /// <summary>The message's octets, exactly as stored. Valid until this is disposed.</summary>
    public ReadOnlyMemory<byte> Memory { get; }

    /// <summary>True when the content came from a local copy rather than inline.</summary>
    public bool IsFileBacked => _file is not null;

    /// <summary>
    /// The content of <paramref name="message"/>: its inline content, or its detached content copied into a new file in
    /// <paramref name="directory"/>. Null when the message was purged between taking the lease and copying.
    /// </summary>
    /// <exception cref="InvalidDataException">The store returned a different length than it announced.</exception>
    public static async Task<AttemptContent?> LoadAsync(ISpool spool, StoredMessage message, string directory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spool);
        ArgumentNullException.ThrowIfNull(message);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (message.DetachedContentLength is not { } length)
        {
            // Inline content may be a rented buffer (StoredMessage.ContentLease): given back when the attempt ends.
            return new AttemptContent(message.Content, null, null, message.ContentLease);
        }

        var file = SpillFile.Create(directory, $"attempt-{message.Id:N}-{Guid.NewGuid():N}.eml", length, 128 * 1024);
        MappedContent? mapped = null;
        try
        {
            if (!await spool.CopyContentAsync(message.Id, file, cancellationToken))
            {
                await file.DisposeAsync();
                return null;
            }

            await file.FlushAsync(cancellationToken);

            if (file.Length != length)
            {
                throw new InvalidDataException($"Message {message.Id}: the store announced {length} octets of content and returned {file.Length}.");
            }

            mapped = new MappedContent(file, length);
            return new AttemptContent(mapped.Memory, file, mapped);
        }
        catch
        {
            ((IDisposable?)mapped)?.Dispose();
            await file.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _lease?.Dispose();
        ((IDisposable?)_mapped)?.Dispose();
        if (_file is not null)
        {
            await _file.DisposeAsync();
        }
    }
}
