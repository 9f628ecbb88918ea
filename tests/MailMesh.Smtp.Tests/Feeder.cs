using System.Buffers;
using System.Text;

namespace MailMesh.Smtp.Tests;

/// <summary>
/// Feeds a transcript to a parser the way a PipeReader does: each read sees the unconsumed bytes of the previous
/// reads (as their own segment) followed by the newly arrived chunk, so every parse runs over multi-segment input.
/// </summary>
internal static class Feeder
{
    public delegate bool Step(ref SequenceReader<byte> reader);

    /// <summary>Every way to cut the input in two, plus one byte at a time, plus all at once.</summary>
    public static IEnumerable<int[]> Splits(int length)
    {
        yield return [length];
        yield return [.. Enumerable.Repeat(1, length)];
        for (var i = 1; i < length; i++)
        {
            yield return [i, length - i];
        }
    }

    /// <summary>Runs <paramref name="step"/> until it reports need-more, for each chunk; returns the bytes never consumed and the largest carried buffer.</summary>
    public static (byte[] Unconsumed, long MaxBuffered) Run(byte[] input, int[] chunks, Step step)
    {
        var pending = Array.Empty<byte>();
        var offset = 0;
        long maxBuffered = 0;
        foreach (var size in chunks)
        {
            var chunk = input.AsSpan(offset, size).ToArray();
            offset += size;
            var sequence = Segments(pending, chunk);
            var reader = new SequenceReader<byte>(sequence);
            while (step(ref reader))
            {
            }

            pending = sequence.Slice(reader.Position).ToArray();
            maxBuffered = Math.Max(maxBuffered, pending.Length);
        }

        return (pending, maxBuffered);
    }

    public static ReadOnlySequence<byte> Segments(params byte[][] parts)
    {
        var nonEmpty = parts.Where(p => p.Length > 0).ToArray();
        if (nonEmpty.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(nonEmpty[0], 0);
        var last = first;
        foreach (var part in nonEmpty.Skip(1))
        {
            last = last.Append(part);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    public static byte[] Ascii(string text) => Encoding.Latin1.GetBytes(text);

    public static string Text(in ReadOnlySequence<byte> bytes) => Encoding.Latin1.GetString(bytes.ToArray());

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
