using System.Buffers;
using System.Data.Common;

namespace MailMesh.Storage.Content;

/// <summary>
/// A message's inline content read into an array rented from <see cref="ArrayPool{T}.Shared"/>, given back when this is
/// disposed (<see cref="StoredMessage.ContentLease"/>; <see cref="AttemptContent"/> disposes it after the attempt).
/// </summary>
/// <remarks>
/// A delivery attempt used to read its content as a new array: a 100 KB message was a large-object-heap allocation per
/// attempt, the largest allocation of the Delivery process under load and a cause of its gen-2 collections (issue 8).
/// A lease that is never disposed (a caller that does not use <see cref="AttemptContent"/>) only costs the pool that
/// array; the garbage collector reclaims it like any other.
/// </remarks>
public sealed class RentedContent : IDisposable
{
    private byte[]? _array;

    private RentedContent(byte[] array, int length)
    {
        _array = array;
        Memory = array.AsMemory(0, length);
    }

    /// <summary>The content. Valid until this is disposed.</summary>
    public ReadOnlyMemory<byte> Memory { get; }

    /// <summary>Reads column <paramref name="ordinal"/> (a byte string) of the current row into a rented array.</summary>
    public static RentedContent Read(DbDataReader reader, int ordinal)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var length = checked((int)reader.GetBytes(ordinal, 0, null, 0, 0));
        var array = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            var read = 0;
            while (read < length)
            {
                var n = (int)reader.GetBytes(ordinal, read, array, read, length - read);
                if (n <= 0)
                {
                    throw new InvalidDataException($"The store announced {length} octets of content and returned {read}.");
                }

                read += n;
            }

            return new RentedContent(array, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(array);
            throw;
        }
    }

    /// <summary>Reads exactly <paramref name="length"/> octets of <paramref name="source"/> into a rented array: SQLite's
    /// incremental blob I/O copies the pages straight into it, where a data reader's <c>GetBytes</c> first loads the whole
    /// blob into a new array of its own (one large-object allocation per 100 KB message).</summary>
    public static RentedContent Read(Stream source, int length)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var array = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            source.ReadExactly(array, 0, length);
            return new RentedContent(array, length);
        }
        catch (EndOfStreamException e)
        {
            ArrayPool<byte>.Shared.Return(array);
            throw new InvalidDataException($"The store announced {length} octets of content and returned fewer.", e);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(array);
            throw;
        }
    }

    /// <summary>Gives the array back to the pool; the content must not be used after this.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _array, null) is { } array)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }
}
