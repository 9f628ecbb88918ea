using System.Text;
using BenchmarkDotNet.Attributes;
using MailMesh.Queue;
using MailMesh.Storage;

namespace MailMesh.Benchmarks.Queue;

/// <summary>
/// One RFC 3464 bounce (<see cref="DsnBuilder.Build"/>, MimeKit): a 10 KB or 100 KB original, one failed recipient, the
/// original returned in full or, past the returned-size limit, as headers only.
/// </summary>
[MemoryDiagnoser]
public class DsnBuilderBenchmarks
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private StoredMessage _original = null!;
    private DsnRecipient[] _recipients = [];

    [Params(10 * 1024, 100 * 1024)]
    public int Size { get; set; }

    [Params(true, false)]
    public bool ReturnFull { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var text = new StringBuilder("From: sender@example.org\r\nTo: user@example.com\r\nSubject: benchmark\r\nMessage-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
        while (text.Length < Size)
        {
            text.Append('x', 76).Append("\r\n");
        }

        _original = new StoredMessage
        {
            Id = Guid.NewGuid(),
            Sender = "sender@example.org",
            Content = Encoding.ASCII.GetBytes(text.ToString()),
            ReceivedAt = Now.AddMinutes(-5),
            Origin = MessageOrigin.Smtp,
            BodyType = BodyType.SevenBit,
            SmtpUtf8 = false,
            RequireTls = false,
        };
        _recipients =
        [
            new DsnRecipient
            {
                Address = "user@example.com",
                Action = DsnAction.Failed,
                Status = "5.1.1",
                RemoteMta = "mx.example.com",
                ReplyCode = 550,
                ReplyEnhancedCode = "5.1.1",
                ReplyText = "No such user here",
                LastAttemptAt = Now,
            },
        ];
    }

    [Benchmark]
    public int Build() =>
        DsnBuilder.Build(_original, _recipients, "mx.mailmesh.test", Guid.Empty, Now, ReturnFull ? 10L * 1024 * 1024 : 1024).Length;
}
