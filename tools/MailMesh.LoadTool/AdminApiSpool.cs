using System.Diagnostics;
using System.Globalization;
using System.Text;
using MailMesh.Storage.Postgres;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace MailMesh.LoadTool;

/// <summary>
/// Seeds a PostgreSQL spool with N messages for the admin API timing (<c>--admin-api</c>): every migration, then the
/// rows by binary COPY with the secondary indexes dropped and rebuilt after (the spool must be empty), the attempt
/// history generated in the server, ANALYZE. The shape of tools/bench/admin-explain.sh, made more realistic: domains
/// with a heavy head and a long tail, 1-3 recipients per message, 94% delivered, 1% bounced, 3% deferred, 1% queued,
/// 1% held; messages received over the last four days, the pending ones skewed young. Nothing is due for a day (pending
/// work is scheduled one to two days ahead), so the service under test has no delivery work of its own.
/// </summary>
internal static class AdminApiSpool
{
    public const int Domains = 2000;
    public const int Senders = 500;
    public static readonly TimeSpan Span = TimeSpan.FromDays(4);

    /// <summary>Runs the migrations and, if the spool has no message, seeds it; returns the number of messages in it.</summary>
    public static async Task<long> PrepareAsync(string connectionString, int messages, DateTimeOffset now, TextWriter log)
    {
        // No command timeout: a COPY of a million rows and the index builds run for minutes on a busy machine.
        await using var dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString) { CommandTimeout = 0 }.ConnectionString);
        await new PostgresSchemaMigrator(dataSource, NullLogger<PostgresSchemaMigrator>.Instance).MigrateAsync(CancellationToken.None);
        await using var connection = await dataSource.OpenConnectionAsync();
        var existing = await ScalarAsync<long>(connection, "SELECT count(*) FROM spool.messages");
        if (existing > 0)
        {
            log.WriteLine($"admin-api: the spool already holds {existing:N0} messages: measuring them as they are (no seeding)");
            return existing;
        }

        var clock = Stopwatch.StartNew();
        var indexes = new List<string>();
        await using (var command = new NpgsqlCommand(
            """
            SELECT i.indexdef FROM pg_indexes AS i
            WHERE i.schemaname = 'spool' AND i.tablename IN ('messages', 'recipients', 'attempts')
                AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conname = i.indexname)
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                indexes.Add(reader.GetString(0));
            }
        }

        foreach (var definition in indexes)
        {
            var name = definition.Split(' ')[2];
            await ExecuteAsync(connection, $"DROP INDEX spool.{name}");
        }

        var random = new Random(12);
        var rows = Generate(messages, now, random);
        await CopyMessagesAsync(connection, rows);
        await CopyRecipientsAsync(connection, rows, now, random);
        log.WriteLine($"admin-api: copied {rows.Count:N0} messages, {rows.Sum(r => r.Recipients.Length):N0} recipients in {clock.Elapsed.TotalSeconds:F0} s");

        // One attempt per attempted recipient, as the history would hold it (deferred ones: their last attempt only).
        await ExecuteAsync(connection,
            """
            INSERT INTO spool.attempts (recipient_id, attempted_at, reply_code, enhanced_code, reply_text, remote_host, state, bounce_class)
            SELECT id, updated_at, last_reply_code, last_enhanced_code, last_reply_text, last_remote_host, state, last_bounce_class
            FROM spool.recipients WHERE state IN (2, 3, 4)
            """);
        foreach (var definition in indexes)
        {
            await ExecuteAsync(connection, definition);
        }

        await ExecuteAsync(connection, "VACUUM (ANALYZE) spool.messages, spool.recipients, spool.attempts");
        log.WriteLine($"admin-api: seeded with attempts and {indexes.Count} indexes rebuilt in {clock.Elapsed.TotalSeconds:F0} s");
        return rows.Count;
    }

    internal sealed record SeedMessage(Guid Id, int Sender, DateTimeOffset ReceivedAt, SeedRecipient[] Recipients)
    {
        public bool Complete => Recipients.All(r => r.State is 3 or 4);
    }

    internal sealed record SeedRecipient(int User, int Domain, short State);

    internal static List<SeedMessage> Generate(int messages, DateTimeOffset now, Random random)
    {
        var rows = new List<SeedMessage>(messages);
        for (var i = 0; i < messages; i++)
        {
            var count = random.NextDouble() switch { < 0.7 => 1, < 0.9 => 2, _ => 3 };
            var recipients = new SeedRecipient[count];
            for (var k = 0; k < count; k++)
            {
                // A heavy head (d0.test gets about 15%, the ten largest a third) and a long tail over 2,000 domains.
                var domain = (int)(Domains * Math.Pow(random.NextDouble(), 4));
                var state = random.Next(100) switch { < 3 => (short)2, 3 => (short)0, 4 => (short)7, 5 => (short)4, _ => (short)3 };
                recipients[k] = new SeedRecipient(random.Next(100_000), domain, state);
            }

            // Pending mail is mostly young (a queue drains); finished mail spreads evenly over the retention.
            var pending = recipients.Any(r => r.State is 0 or 2 or 7);
            var age = Span * (pending ? Math.Pow(random.NextDouble(), 2) : random.NextDouble());
            var receivedAt = StoreTime(now - age);
            rows.Add(new SeedMessage(Guid.CreateVersion7(receivedAt), random.Next(Senders), receivedAt, recipients));
        }

        return rows;
    }

    /// <summary>Microsecond precision, as PostgreSQL stores it.</summary>
    private static DateTimeOffset StoreTime(DateTimeOffset time) => new(time.UtcTicks - (time.UtcTicks % 10), TimeSpan.Zero);

    private static async Task CopyMessagesAsync(NpgsqlConnection connection, List<SeedMessage> rows)
    {
        await using var writer = await connection.BeginBinaryImportAsync(
            """
            COPY spool.messages (id, sender, content, size, received_at, origin, client_address, client_helo, body_type,
                smtputf8, requiretls, completed_at) FROM STDIN (FORMAT BINARY)
            """);
        writer.Timeout = TimeSpan.FromHours(1);
        foreach (var m in rows)
        {
            var sender = Sender(m.Sender);
            var content = Content(m, sender);
            await writer.StartRowAsync();
            await writer.WriteAsync(m.Id, NpgsqlDbType.Uuid);
            await writer.WriteAsync(sender, NpgsqlDbType.Text);
            await writer.WriteAsync(content, NpgsqlDbType.Bytea);
            await writer.WriteAsync((long)content.Length, NpgsqlDbType.Bigint);
            await writer.WriteAsync(m.ReceivedAt, NpgsqlDbType.TimestampTz);
            await writer.WriteAsync((short)0, NpgsqlDbType.Smallint);
            await writer.WriteAsync("192.0.2." + (1 + (m.Sender % 200)).ToString(CultureInfo.InvariantCulture), NpgsqlDbType.Text);
            await writer.WriteAsync("app" + (m.Sender % 20).ToString(CultureInfo.InvariantCulture) + ".example", NpgsqlDbType.Text);
            await writer.WriteAsync((short)0, NpgsqlDbType.Smallint);
            await writer.WriteAsync(false, NpgsqlDbType.Boolean);
            await writer.WriteAsync(false, NpgsqlDbType.Boolean);
            if (m.Complete)
            {
                await writer.WriteAsync(m.ReceivedAt.AddSeconds(5), NpgsqlDbType.TimestampTz);
            }
            else
            {
                await writer.WriteNullAsync();
            }
        }

        await writer.CompleteAsync();
    }

    private static async Task CopyRecipientsAsync(NpgsqlConnection connection, List<SeedMessage> rows, DateTimeOffset now, Random random)
    {
        await using var writer = await connection.BeginBinaryImportAsync(
            """
            COPY spool.recipients (message_id, address, domain, state, attempts, next_attempt_at, last_reply_code,
                last_enhanced_code, last_reply_text, last_remote_host, updated_at, received_at, last_bounce_class) FROM STDIN (FORMAT BINARY)
            """);
        writer.Timeout = TimeSpan.FromHours(1);
        foreach (var m in rows)
        {
            foreach (var r in m.Recipients)
            {
                var domain = DomainName(r.Domain);
                var (attempts, next, code, enhanced, text, updated, bounceClass) = Outcome(m, r, now, random);
                await writer.StartRowAsync();
                await writer.WriteAsync(m.Id, NpgsqlDbType.Uuid);
                await writer.WriteAsync(Address(r), NpgsqlDbType.Text);
                await writer.WriteAsync(domain, NpgsqlDbType.Text);
                await writer.WriteAsync(r.State, NpgsqlDbType.Smallint);
                await writer.WriteAsync(attempts, NpgsqlDbType.Integer);
                await writer.WriteAsync(StoreTime(next), NpgsqlDbType.TimestampTz);
                await WriteNullableAsync(writer, code, NpgsqlDbType.Smallint);
                await WriteNullableAsync(writer, enhanced, NpgsqlDbType.Text);
                await WriteNullableAsync(writer, text, NpgsqlDbType.Text);
                await WriteNullableAsync(writer, code is null ? null : "mx1." + domain, NpgsqlDbType.Text);
                await writer.WriteAsync(StoreTime(updated), NpgsqlDbType.TimestampTz);
                await writer.WriteAsync(m.ReceivedAt, NpgsqlDbType.TimestampTz);
                await WriteNullableAsync(writer, bounceClass, NpgsqlDbType.Text);
            }
        }

        await writer.CompleteAsync();
    }

    /// <summary>What a seeded recipient's row says about its attempts (both providers' seeds draw the same numbers).</summary>
    internal static (int Attempts, DateTimeOffset Next, short? Code, string? Enhanced, string? Text, DateTimeOffset Updated, string? BounceClass) Outcome(
        SeedMessage m, SeedRecipient r, DateTimeOffset now, Random random) => r.State switch
        {
            3 => (1, m.ReceivedAt, (short?)250, "2.0.0", "250 2.0.0 Ok: queued", m.ReceivedAt.AddSeconds(2), (string?)null),
            4 => (1, m.ReceivedAt, (short?)550, "5.1.1", "550 5.1.1 user unknown", m.ReceivedAt.AddSeconds(2), "InvalidRecipient"),
            2 => (1 + random.Next(5), now.AddMinutes(Later(random)), (short?)451, "4.7.1", "451 4.7.1 try again later", m.ReceivedAt + ((now - m.ReceivedAt) / 2), (string?)null),
            7 => (0, m.ReceivedAt, (short?)null, (string?)null, (string?)null, m.ReceivedAt, (string?)null),
            _ => (0, now.AddMinutes(Later(random)), (short?)null, (string?)null, (string?)null, m.ReceivedAt, (string?)null),
        };

    /// <summary>
    /// Minutes until a pending recipient is due: one to two days, so that a kept spool can be measured again the next
    /// hour without the service under test delivering (and bouncing, with DSNs) its seeded work first.
    /// </summary>
    private static int Later(Random random) => 1440 + random.Next(1440);

    private static async Task WriteNullableAsync<T>(NpgsqlBinaryImporter writer, T? value, NpgsqlDbType type)
    {
        if (value is null)
        {
            await writer.WriteNullAsync();
        }
        else
        {
            await writer.WriteAsync(value, type);
        }
    }

    public static string Sender(int n) => "sender" + n.ToString(CultureInfo.InvariantCulture) + "@app.example";

    public static string DomainName(int n) => "d" + n.ToString(CultureInfo.InvariantCulture) + ".test";

    internal static string Address(SeedRecipient r) => "user" + r.User.ToString(CultureInfo.InvariantCulture) + "@" + DomainName(r.Domain);

    internal static byte[] Content(SeedMessage m, string sender)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"From: <{sender}>\r\n");
        text.Append(CultureInfo.InvariantCulture, $"To: <{Address(m.Recipients[0])}>\r\n");
        text.Append(CultureInfo.InvariantCulture, $"Subject: Your receipt {m.Id:N}\r\n");
        text.Append(CultureInfo.InvariantCulture, $"Date: {m.ReceivedAt:r}\r\n");
        text.Append(CultureInfo.InvariantCulture, $"Message-ID: <{m.Id:N}@app.example>\r\n");
        text.Append("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
        text.Append("Thank you for your order. This message was generated by the MailMesh load tool (--admin-api).\r\n");
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    internal static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync();
    }

    internal static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
