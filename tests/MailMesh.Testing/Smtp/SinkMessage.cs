using System.Text;

namespace MailMesh.Testing.Smtp;

/// <summary>One mail transaction the sink completed (end of DATA or BDAT LAST), whatever it replied.</summary>
public sealed record SinkMessage
{
    /// <summary>1-based number of the TCP connection the transaction ran on.</summary>
    public required int ConnectionId { get; init; }

    /// <summary>The reverse path without angle brackets.</summary>
    public required string MailFrom { get; init; }

    /// <summary>Parameters after the reverse path (e.g. "SIZE=123 BODY=8BITMIME"), as sent.</summary>
    public required string MailParameters { get; init; }

    /// <summary>Recipients the sink accepted (2xx) in this transaction, in order.</summary>
    public required IReadOnlyList<string> Recipients { get; init; }

    /// <summary>The DATA section exactly as received, dot-stuffed, without the final ".\r\n" (or the BDAT chunks).</summary>
    public required byte[] RawData { get; init; }

    /// <summary>The message content after removing the dot-stuffing (RFC 5321 §4.5.2).</summary>
    public required byte[] Data { get; init; }

    /// <summary>The reply the sink gave at the end of data, or null when it closed the connection instead.</summary>
    public string? Reply { get; init; }

    /// <summary>True when the transaction used BDAT (RFC 3030).</summary>
    public bool Chunked { get; init; }

    /// <summary>BDAT commands of the transaction (0 for DATA).</summary>
    public int ChunkCount { get; init; }

    /// <summary>True when the transaction ran inside TLS (after STARTTLS).</summary>
    public bool Tls { get; init; }

    /// <summary>The address the client connected from (the remote end point the sink saw).</summary>
    public System.Net.IPAddress? ClientAddress { get; init; }

    /// <summary>The name the client gave in its last EHLO or HELO on the connection.</summary>
    public string? Helo { get; init; }

    /// <summary>When the sink had the whole message (before it replied), by the machine's clock.</summary>
    public DateTimeOffset ReceivedAt { get; init; } = DateTimeOffset.UtcNow;

    public string DataText => Encoding.UTF8.GetString(Data);
}
