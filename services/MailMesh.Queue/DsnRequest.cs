using System.Security.Cryptography;
using System.Text;

namespace MailMesh.Queue;

/// <summary>RFC 3461 §4.1 NOTIFY: which notifications a recipient asked for.</summary>
[Flags]
internal enum NotifyConditions
{
    Never = 0,
    Success = 1,
    Failure = 2,
    Delay = 4,
}

internal static class DsnRequest
{
    private static readonly Guid Namespace = new("4d0b8f7e-55a3-4c2e-9d7a-6a1f3c2b9e10");

    /// <summary>
    /// Parses NOTIFY. RFC 3461 §4.1: when NOTIFY is absent the MTA behaves as if NOTIFY=FAILURE (optionally
    /// FAILURE,DELAY — MailMesh sends delay notices only when asked explicitly).
    /// </summary>
    public static NotifyConditions ParseNotify(string? notify)
    {
        if (string.IsNullOrWhiteSpace(notify))
        {
            return NotifyConditions.Failure;
        }

        var conditions = NotifyConditions.Never;
        foreach (var keyword in notify.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (keyword.Equals("NEVER", StringComparison.OrdinalIgnoreCase))
            {
                return NotifyConditions.Never;
            }

            conditions |= keyword.ToUpperInvariant() switch
            {
                "SUCCESS" => NotifyConditions.Success,
                "FAILURE" => NotifyConditions.Failure,
                "DELAY" => NotifyConditions.Delay,
                _ => NotifyConditions.Never,
            };
        }

        return conditions;
    }

    /// <summary>
    /// A name-based (version 5, RFC 9562 §5.5) UUID from the message id and <paramref name="name"/>: the same inputs
    /// always give the same DSN id, so a redelivered result cannot queue a second DSN (<c>ISpool.StoreAsync</c> of a
    /// known id is a no-op).
    /// </summary>
    public static Guid DeterministicId(Guid messageId, string name)
    {
        var input = new byte[16 + 16 + Encoding.UTF8.GetByteCount(name)];
        Namespace.TryWriteBytes(input, bigEndian: true, out _);
        messageId.TryWriteBytes(input.AsSpan(16), bigEndian: true, out _);
        Encoding.UTF8.GetBytes(name, input.AsSpan(32));

        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
#pragma warning disable CA5350 // RFC 9562 §5.5 defines version 5 UUIDs with SHA-1; this is naming, not security.
        SHA1.HashData(input, hash);
#pragma warning restore CA5350
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50); // version 5
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80); // RFC 9562 variant
        return new Guid(hash[..16], bigEndian: true);
    }

    /// <summary>The id of the report (failure/success) DSN for the attempt made under <paramref name="leaseId"/>.</summary>
    public static Guid ReportId(Guid messageId, Guid leaseId) => DeterministicId(messageId, "report:" + leaseId.ToString("N"));

    /// <summary>The id of the one delay DSN for the recipients of a message at a domain.</summary>
    public static Guid DelayId(Guid messageId, string domain) => DeterministicId(messageId, "delay:" + domain.ToLowerInvariant());
}
