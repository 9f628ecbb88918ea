using System.Buffers;

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
/// </summary>
internal sealed class MessageBuffer : IBufferWriter<byte>, IDisposable
{
    private const int PooledLimit = 1024 * 1024;
    private const int ScratchSize = 4096;

    private readonly MessageBufferBudget _budget;
    private readonly int _maxCapacity;
    private byte[] _array = [];
    private bool _pooled;
    private int _written;
    private byte[]? _scratch;
    private bool _scratchOut;

    /// <param name="budget">The process-wide budget every growth is reserved from.</param>
    /// <param name="initialCapacity">The first allocation (small: a Received header and a short message).</param>
    /// <param name="maxCapacity">The largest the buffer may grow (the message size limit and some slack).</param>
    public MessageBuffer(MessageBufferBudget budget, int initialCapacity, int maxCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(initialCapacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCapacity, initialCapacity);
        _budget = budget;
        _maxCapacity = maxCapacity;
        Grow(initialCapacity);
    }

    /// <summary>The budget could not cover a growth: the content is gone and writes are discarded.</summary>
    public bool Exhausted { get; private set; }

    public bool IsDisposed { get; private set; }

    public int WrittenCount => _written;

    public ReadOnlyMemory<byte> WrittenMemory => _array.AsMemory(0, _written);

    public ReadOnlySpan<byte> WrittenSpan => _array.AsSpan(0, _written);

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
        Free();
    }

    private bool EnsureCapacity(int sizeHint)
    {
        var needed = (long)_written + Math.Max(sizeHint, 1);
        if (needed <= _array.Length)
        {
            return true;
        }

        if (needed > _maxCapacity)
        {
            // Over the message size limit: the size check refuses the message; keep what is there, drop the rest.
            return false;
        }

        var capacity = (int)Math.Min(_maxCapacity, Math.Max(needed, (long)_array.Length * 2));
        if (!Grow(capacity))
        {
            Exhausted = true;
            Free();
            return false;
        }

        return true;
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
