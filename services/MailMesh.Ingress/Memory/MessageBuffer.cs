using System.Buffers;
using MailMesh.Storage;
using MailMesh.Storage.Content;
using Microsoft.Win32.SafeHandles;

namespace MailMesh.Ingress.Memory;

/// <summary>
/// A message being received, in one contiguous buffer that grows as octets arrive (never sized from a client's
/// declaration such as RFC 1870 SIZE or Content-Length), with its capacity reserved from the
/// <see cref="MessageBufferBudget"/> before each growth. Arrays up to 1 MiB come from <see cref="ArrayPool{T}.Shared"/>;
/// larger ones are allocated uninitialised and left to the GC, so the pool never retains message-sized arrays. The
/// content is kept contiguous because it is committed as one value (a bytea parameter, a blob), so the buffer is the
/// only copy from the first octet to the commit.
/// When the budget cannot cover a growth the buffer becomes <see cref="Exhausted"/>: what it held is released at once
/// and further writes are discarded, so the caller reads the rest of the message in step with the client and refuses
/// it (452 4.3.1 / 503), never accepts it.
/// With a <see cref="BodySpill"/>, a message that would grow past <see cref="BodySpill.Threshold"/> moves to a temporary
/// file (deleted when the buffer is disposed, whatever happens) and only a 64 KiB staging area stays reserved from the
/// budget; the content is then handed to the spool as a stream (<see cref="ContentSource()"/>).
/// </summary>
internal sealed class MessageBuffer : IBufferWriter<byte>, IDisposable
{
    private const int PooledLimit = 1024 * 1024;
    private const int ScratchSize = 4096;
    private const int StagingSize = 64 * 1024;

    private readonly MessageBufferBudget _budget;
    private readonly int _maxCapacity;
    private byte[] _array = [];
    private bool _pooled;
    private int _written;
    private byte[]? _scratch;
    private bool _scratchOut;
    private readonly BodySpill? _spill;
    private FileStream? _file;
    private long _fileLength;
    private bool _eightBit;

    /// <param name="budget">The process-wide budget every growth is reserved from.</param>
    /// <param name="initialCapacity">The first allocation (small: a Received header and a short message).</param>
    /// <param name="maxCapacity">The largest the buffer may grow (the message size limit and some slack).</param>
    /// <param name="spill">Where and past which size the content moves to a temporary file; null keeps it in memory.</param>
    public MessageBuffer(MessageBufferBudget budget, int initialCapacity, int maxCapacity, BodySpill? spill = null)
    {
        _spill = spill;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(initialCapacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCapacity, initialCapacity);
        _budget = budget;
        _maxCapacity = maxCapacity;
        Grow(initialCapacity);
    }

    /// <summary>The budget could not cover a growth: the content is gone and writes are discarded.</summary>
    public bool Exhausted { get; private set; }

    public bool IsDisposed { get; private set; }

    public int WrittenCount => checked((int)Length);

    /// <summary>Octets written so far, in memory and in the spill file.</summary>
    public long Length => _fileLength + _written;

    /// <summary>The content moved to a temporary file: read it through <see cref="ContentSource()"/>.</summary>
    public bool IsSpilled => _file is not null;

    /// <summary>The path of the spill file while it exists (for tests and logs).</summary>
    public string? SpillPath => _file?.Name;

    /// <summary>Some octet written so far is above 127 (RFC 6152 8-bit data).</summary>
    public bool HasEightBit => _eightBit;

    public ReadOnlyMemory<byte> WrittenMemory => IsSpilled ? throw new InvalidOperationException("The content is in a spill file.") : _array.AsMemory(0, _written);

    public ReadOnlySpan<byte> WrittenSpan => IsSpilled ? throw new InvalidOperationException("The content is in a spill file.") : _array.AsSpan(0, _written);

    /// <summary>
    /// The content as the spool takes it: each <see cref="MessageContentSource.Open"/> is a fresh read-only stream over
    /// the spill file (the file stays owned by this buffer). Writes the staged tail to the file first; only valid
    /// while the buffer is not disposed.
    /// </summary>
    public MessageContentSource ContentSource() => ContentSource(0);

    /// <summary>
    /// <see cref="ContentSource()"/> from <paramref name="offset"/> on (the body after a header section that is stored
    /// rewritten), over the same file without copying it.
    /// </summary>
    public MessageContentSource ContentSource(long offset)
    {
        var file = _file ?? throw new InvalidOperationException("The content is in memory.");
        FlushStaged();
        if (Exhausted)
        {
            throw new InvalidOperationException("The content could not be written to the spill file.");
        }

        file.Flush();
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, _fileLength);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var length = _fileLength - offset;
        var handle = file.SafeFileHandle;
        return new MessageContentSource(length, () => new SpillReadStream(handle, length, offset))
        {
            Map = () => new MappedContent(file, offset, length),
        };
    }

    /// <summary>
    /// The content is all written: a spilled buffer writes its staged tail to the file now, so a file that cannot take
    /// it (Ingress:MaxSpilledBytes used up, disk full) makes the buffer <see cref="Exhausted"/> here, where the caller
    /// refuses the message, instead of in <see cref="ContentSource()"/> or <see cref="MapSpilled"/>, which then throw.
    /// </summary>
    /// <returns>false when the buffer is exhausted.</returns>
    public bool Complete()
    {
        FlushStaged();
        return !Exhausted;
    }

    /// <summary>
    /// The spilled content as one read-only block of memory (a map of the spill file; see <see cref="MappedContent"/>).
    /// Writes the staged tail first; dispose the map before this buffer.
    /// </summary>
    public MappedContent MapSpilled()
    {
        var file = _file ?? throw new InvalidOperationException("The content is in memory.");
        FlushStaged();
        if (Exhausted)
        {
            throw new InvalidOperationException("The content could not be written to the spill file.");
        }

        file.Flush();
        return new MappedContent(file, _fileLength);
    }

    /// <summary>Octets reserved from the budget now (the capacity held).</summary>
    public int Reserved => _array.Length;

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (_scratchOut || Exhausted || IsDisposed)
        {
            return;
        }

        if (_written + count > _array.Length)
        {
            throw new InvalidOperationException("Advanced past the buffer.");
        }

        if (!_eightBit && _array.AsSpan(_written, count).IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0)
        {
            _eightBit = true;
        }

        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        _scratchOut = false;
        if (!Exhausted && !IsDisposed && EnsureCapacity(sizeHint))
        {
            return _array.AsMemory(_written);
        }

        _scratchOut = true;

        // Discarding: a scratch area the writer can fill and advance over.
        var size = Math.Max(sizeHint, ScratchSize);
        if (_scratch is null || _scratch.Length < size)
        {
            _scratch = new byte[size];
        }

        return _scratch;
    }

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    /// <summary>Returns the array and releases the reservation; the content must no longer be used.</summary>
    public void Dispose()
    {
        if (IsDisposed)
        {
            return;
        }

        IsDisposed = true;

        // The file goes first, so a budget that reads zero means no spill file is left either.
        CloseFile();
        Free();
    }

    private bool EnsureCapacity(int sizeHint)
    {
        var needed = (long)_written + Math.Max(sizeHint, 1);
        if (needed <= _array.Length)
        {
            return true;
        }

        if (_fileLength + needed > _maxCapacity)
        {
            // Over the message size limit: the size check refuses the message; keep what is there, drop the rest.
            return false;
        }

        if (_file is not null)
        {
            // Spilled: the staging area is full; write it out and start it again.
            FlushStaged();
            return !Exhausted && Math.Max(sizeHint, 1) <= _array.Length;
        }

        if (_spill is { } spill && needed > spill.Threshold)
        {
            return Spill(spill, sizeHint);
        }

        var capacity = (int)Math.Min(_maxCapacity, Math.Max(needed, (long)_array.Length * 2));
        if (_spill is { } limit && needed <= limit.Threshold)
        {
            // In memory the buffer never holds more than the threshold: past it, the content moves to the file.
            capacity = (int)Math.Min(capacity, limit.Threshold);
        }

        if (!Grow(capacity))
        {
            Exhausted = true;
            Free();
            return false;
        }

        return true;
    }

    private bool Spill(BodySpill spill, int sizeHint)
    {
        var staging = Math.Max(StagingSize, sizeHint);
        var held = _array;
        var heldPooled = _pooled;
        var written = _written;
        if (!_budget.TryReserve(staging))
        {
            Exhausted = true;
            Free();
            return false;
        }

        try
        {
            _file = new FileStream(
                Path.Combine(spill.Directory, "mailmesh-body-" + Guid.NewGuid().ToString("N") + ".tmp"),
                new FileStreamOptions
                {
                    Mode = FileMode.CreateNew,
                    Access = FileAccess.ReadWrite,
                    Share = FileShare.None,
                    Options = FileOptions.DeleteOnClose | FileOptions.Asynchronous | FileOptions.SequentialScan,
                });
            if (!_budget.TryReserveSpill(written))
            {
                throw new IOException("Ingress:MaxSpilledBytes is used up.");
            }

            _fileLength = written;
            _file.Write(held, 0, written);
        }
        catch (IOException)
        {
            _budget.Release(staging);
            CloseFile();
            Exhausted = true;
            Free();
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            _budget.Release(staging);
            CloseFile();
            Exhausted = true;
            Free();
            return false;
        }

        // The staging array replaces the in-memory content; its reservation was taken above.
        var array = ArrayPool<byte>.Shared.Rent(staging);
        if (array.Length != staging && !_budget.TryReserve(array.Length - staging))
        {
            ArrayPool<byte>.Shared.Return(array);
            _budget.Release(staging);
            CloseFile();
            Exhausted = true;
            Free();
            return false;
        }

        _array = held;
        _pooled = heldPooled;
        Free();
        _array = array;
        _pooled = true;
        _written = 0;
        return true;
    }

    /// <summary>Writes the staging area to the spill file. A write that fails (disk full) makes the buffer exhausted:
    /// the message is refused with 452 4.3.1, never accepted short.</summary>
    private void FlushStaged()
    {
        if (_file is null || _written == 0 || Exhausted)
        {
            return;
        }

        try
        {
            if (!_budget.TryReserveSpill(_written))
            {
                throw new IOException("Ingress:MaxSpilledBytes is used up.");
            }

            _fileLength += _written;
            _file.Write(_array, 0, _written);
            _written = 0;
        }
        catch (IOException)
        {
            Exhausted = true;
            Free();
            CloseFile();
        }
    }

    private void CloseFile()
    {
        var file = _file;
        _file = null;
        if (file is not null)
        {
            // What the file was charged to Ingress:MaxSpilledBytes (set before each write).
            _budget.ReleaseSpill(_fileLength);
        }

        _fileLength = 0;

        // FileOptions.DeleteOnClose: disposing the stream removes the file.
        file?.Dispose();
    }

    private bool Grow(int capacity)
    {
        // The new array is reserved before the old one is released: both exist while the content is copied.
        if (!_budget.TryReserve(capacity))
        {
            if (_array.Length == 0)
            {
                Exhausted = true;
            }

            return false;
        }

        var pooled = capacity <= PooledLimit;
        var array = pooled ? ArrayPool<byte>.Shared.Rent(capacity) : GC.AllocateUninitializedArray<byte>(capacity);
        if (array.Length != capacity)
        {
            // The pool rounds up to a power of two: reserve what is really held.
            if (!_budget.TryReserve(array.Length - capacity))
            {
                ArrayPool<byte>.Shared.Return(array);
                _budget.Release(capacity);
                return false;
            }
        }

        WrittenSpan.CopyTo(array);
        Free();
        _array = array;
        _pooled = pooled;
        return true;
    }

    private void Free()
    {
        if (_array.Length == 0)
        {
            return;
        }

        var array = _array;
        _array = [];
        if (_pooled)
        {
            ArrayPool<byte>.Shared.Return(array);
        }

        _budget.Release(array.Length);
        if (Exhausted)
        {
            _written = 0;
        }
    }
}

/// <summary>Where a message body that grows past <see cref="Threshold"/> octets is moved (Ingress:MemoryBodyThreshold,
/// Ingress:SpillDirectory).</summary>
internal sealed record BodySpill(long Threshold, string Directory);

/// <summary>A read-only, seekable view of <paramref name="length"/> octets of a spill file from <paramref name="start"/>,
/// with its own position (positional reads), so opening it again never disturbs the writer or another reader; disposing
/// it leaves the file open.</summary>
internal sealed class SpillReadStream(SafeFileHandle handle, long length, long start = 0) : ReadOnlyContentStream
{
    public override long Length => length;

    public override int Read(Span<byte> buffer)
    {
        var take = (int)Math.Min(buffer.Length, length - Position);
        if (take <= 0)
        {
            return 0;
        }

        var read = RandomAccess.Read(handle, buffer[..take], start + Position);
        Advance(read);
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var take = (int)Math.Min(buffer.Length, length - Position);
        if (take <= 0)
        {
            return 0;
        }

        var read = await RandomAccess.ReadAsync(handle, buffer[..take], start + Position, cancellationToken);
        Advance(read);
        return read;
    }
}
