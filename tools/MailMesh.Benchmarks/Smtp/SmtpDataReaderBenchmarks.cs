using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using MailMesh.Smtp;

namespace MailMesh.Benchmarks.Smtp;

/// <summary>
/// The DATA reader (RFC 5321 §4.1.1.4 end of data, §4.5.2 dot-unstuffing, line-length and size limits) over a whole
/// message as it arrives: in one segment, or split into 4 KiB segments as a socket delivers it (a pipe's buffers).
/// Content lines are 78 octets with CRLF; every tenth starts with a dot, so there is unstuffing to do. Output goes to
/// a reused <see cref="ArrayBufferWriter{T}"/> (what the Ingress body buffer does) or nowhere (a refused message is
/// read and discarded).
/// </summary>
[MemoryDiagnoser]
public class SmtpDataReaderBenchmarks
{
    private ReadOnlySequence<byte> _content;
    private ArrayBufferWriter<byte> _output = new();
    private SmtpDataReader _reader = new(1, 3);

    [Params(10 * 1024, 100 * 1024)]
    public int Size { get; set; }

    [Params(false, true)]
    public bool Segmented { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var text = new StringBuilder("From: a@example.org\r\nTo: b@example.com\r\nSubject: benchmark\r\n\r\n");
        for (var line = 0; text.Length < Size; line++)
        {
            text.Append(line % 10 == 0 ? ".." : "x").Append('y', line % 10 == 0 ? 74 : 75).Append("\r\n");
        }

        text.Append(".\r\n");
        var bytes = Encoding.ASCII.GetBytes(text.ToString());
        _content = Segmented ? MailMesh.Smtp.Tests.Feeder.Segments([.. bytes.Chunk(4096)]) : new ReadOnlySequence<byte>(bytes);
        _output = new ArrayBufferWriter<byte>(Size * 2);
        _reader = new SmtpDataReader(36_700_160, 1000);
    }

    [Benchmark]
    public long ReadToBuffer()
    {
        _reader.Reset();
        _output.ResetWrittenCount();
        var reader = new SequenceReader<byte>(_content);
        _reader.TryRead(ref reader, _output);
        return _output.WrittenCount;
    }

    [Benchmark]
    public long ReadAndDiscard()
    {
        _reader.Reset();
        var reader = new SequenceReader<byte>(_content);
        _reader.TryRead(ref reader, null);
        return _reader.Size;
    }
}
