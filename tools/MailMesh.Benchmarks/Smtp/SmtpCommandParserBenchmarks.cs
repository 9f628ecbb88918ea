using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using MailMesh.Smtp;

namespace MailMesh.Benchmarks.Smtp;

/// <summary>
/// The SMTP fast path before the data: one command line read off the wire (<see cref="SmtpLineReader"/>) and parsed
/// (<see cref="SmtpCommandParser"/>), for the commands every message costs: MAIL FROM with ESMTP parameters, RCPT TO,
/// DATA, and the EHLO of each session. Allocations per operation are the point (MemoryDiagnoser).
/// </summary>
[MemoryDiagnoser]
public class SmtpCommandParserBenchmarks
{
    private byte[] _line = [];
    private byte[] _wire = [];

    [Params("EHLO", "MAIL", "RCPT", "DATA")]
    public string Command { get; set; } = "MAIL";

    [GlobalSetup]
    public void Setup()
    {
        var text = Command switch
        {
            "EHLO" => "EHLO client.example.org",
            "MAIL" => "MAIL FROM:<bounces+12345@sender.example.org> SIZE=10240 BODY=8BITMIME",
            "RCPT" => "RCPT TO:<user4711@load.example.com>",
            _ => "DATA",
        };
        _line = Encoding.ASCII.GetBytes(text);
        _wire = Encoding.ASCII.GetBytes(text + "\r\n");
    }

    /// <summary>Parsing a complete line (span) into an SmtpCommand.</summary>
    [Benchmark]
    public SmtpCommand? Parse()
    {
        return SmtpCommandParser.TryParse(_line.AsSpan(), out var command, out _) ? command : null;
    }

    /// <summary>What the session does per command: find the line in the received bytes, then parse it.</summary>
    [Benchmark]
    public SmtpCommand? ReadLineAndParse()
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(_wire));
        var lines = new SmtpLineReader(512);
        if (lines.TryReadLine(ref reader, out var line) != LineStatus.Line)
        {
            return null;
        }

        return SmtpCommandParser.TryParse(line, out var command, out _) ? command : null;
    }
}
