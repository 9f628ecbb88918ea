using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace MailMesh.Storage.Content;

/// <summary>
/// A file seen as one read-only block of memory (a memory map), for readers that want a large message contiguous:
/// Ingress parses a spilled JSON submission with <see cref="System.Text.Json.Utf8JsonReader"/> straight from it, and a
/// delivery attempt sends a large message from its local copy (<see cref="AttemptContent"/>). The octets are the file's
/// pages in the page cache (clean, reclaimable by the kernel), not a heap array: a 35 MB body costs no large-object-heap
/// garbage. Dispose it before the file it maps.
/// </summary>
public sealed unsafe class MappedContent : MemoryManager<byte>
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _pointer;
    private readonly int _length;
    private bool _disposed;

    /// <summary>Maps the first <paramref name="length"/> octets of <paramref name="file"/> (which stays open and owned by the caller).</summary>
    public MappedContent(FileStream file, long length)
        : this(file, 0, length)
    {
    }

    /// <summary>Maps <paramref name="length"/> octets of <paramref name="file"/> from <paramref name="offset"/> on.</summary>
    public MappedContent(FileStream file, long offset, long length)
    {
        _length = checked((int)length);
        if (_length == 0)
        {
            // An empty file cannot be mapped.
            return;
        }

        _map = MemoryMappedFile.CreateFromFile(file, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        _view = _map.CreateViewAccessor(offset, length, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _pointer = pointer + _view.PointerOffset;
    }

    public override Span<byte> GetSpan()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _length == 0 ? [] : new Span<byte>(_pointer, _length);
    }

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, _length);
        return new MemoryHandle(_pointer + elementIndex);
    }

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }

        _map?.Dispose();
    }
}
