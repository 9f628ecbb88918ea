using System.IO.Pipelines;
using System.Text;
using MailMesh.Smtp.Client;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// A message's DATA goes to the connection in blocks of 64 KiB, each flushed once. With the pipe's default 4 KiB segments
/// every flush wrote each segment on its own: 16 socket writes (16 TLS records under STARTTLS) per block.
/// </summary>
public sealed class DataBlockWriteTests
{
    [Fact]
    public async Task A_64_KiB_data_block_reaches_the_stream_in_at_most_two_writes()
    {
        var line = Encoding.ASCII.GetBytes(".La la la la la la la la la la la la la la la la la la la la la la la la la\r\n");
        var block = new byte[64 * 1024];
        for (var i = 0; i < block.Length; i++)
        {
            block[i] = line[i % line.Length];
        }

        var stream = new CountingStream();
        var pipe = PipeWriter.Create(stream, SmtpConnection.WriterOptions);
        var stuffing = new DotStuffingWriter(pipe);
        stuffing.Write(block);
        await pipe.FlushAsync();

        Assert.InRange(stream.Writes, 1, 2);
        Assert.Equal(stuffing.BytesWritten, stream.Length);

        // The same with the pipe's defaults: one write per 4 KiB segment, what every block cost before.
        var defaults = new CountingStream();
        var defaultPipe = PipeWriter.Create(defaults, new StreamPipeWriterOptions(leaveOpen: true));
        new DotStuffingWriter(defaultPipe).Write(block);
        await defaultPipe.FlushAsync();
        Assert.True(defaults.Writes >= 16, $"{defaults.Writes} writes with the default options");
    }

    private sealed class CountingStream : MemoryStream
    {
        public int Writes { get; private set; }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Writes++;
            base.Write(buffer);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writes++;
            return base.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Writes++;
            return base.WriteAsync(buffer, offset, count, cancellationToken);
        }
    }
}
