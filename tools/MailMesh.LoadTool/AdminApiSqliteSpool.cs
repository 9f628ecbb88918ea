using System.Diagnostics;
using System.Globalization;
using MailMesh.Storage.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailMesh.LoadTool;

/// <summary>
/// Seeds a SQLite spool (Standalone's) with N messages for <c>--admin-api --provider sqlite</c>: the same rows as
/// <see cref="AdminApiSpool"/> (same generator and seed), every migration first, then the rows in one transaction of
/// prepared inserts with the secondary indexes dropped and rebuilt after (the spool must be empty). No ANALYZE: nothing
/// in MailMesh runs it on a SQLite spool, so the planner sees what it sees in production.
/// </summary>
internal static class AdminApiSqliteSpool
{
    /// <summary>Runs the migrations and, if the spool has no message, seeds it; returns the number of messages in it.</summary>
    public static async Task<long> PrepareAsync(string path, int messages, DateTimeOffset now, TextWriter log)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using (var database = new SqliteDatabase(path))
        {
            await new SqliteSchemaMigrator(database, NullLogger<SqliteSchemaMigrator>.Instance).MigrateAsync(CancellationToken.None);
        }

        await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
        await connection.OpenAsync();
        var existing = (long)(await ScalarAsync(connection, "SELECT count(*) FROM spool_messages"))!;
        if (existing > 0)
        {
            log.WriteLine($"admin-api: the SQLite spool {path} already holds {existing:N0} messages: measuring them as they are (no seeding)");
            return existing;
        }

        var clock = Stopwatch.StartNew();
        await ExecuteAsync(connection, "PRAGMA synchronous = OFF");
        var indexes = new List<(string Name, string Sql)>();
        await using (var command = new SqliteCommand(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('spool_messages', 'spool_recipients', 'spool_attempts')",
            connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                indexes.Add((reader.GetString(0), reader.GetString(1)));
            }
        }

        foreach (var (name, _) in indexes)
        {
            await ExecuteAsync(connection, $"DROP INDEX {name}");
        }

        var random = new Random(12);
        var rows = AdminApiSpool.Generate(messages, now, random);
        await using (var transaction = (SqliteTransaction)await connection.BeginTransactionAsync())
        {
            await InsertAsync(connection, transaction, rows, now, random);
            await ExecuteAsync(connection,
                """
                INSERT INTO spool_attempts (recipient_id, attempted_at, reply_code, enhanced_code, reply_text, remote_host, state, bounce_class)
                SELECT id, updated_at, last_reply_code, last_enhanced_code, last_reply_text, last_remote_host, state, last_bounce_class
                FROM spool_recipients WHERE state IN (2, 3, 4)
                """, transaction);
            await transaction.CommitAsync();
        }

        log.WriteLine($"admin-api: inserted {rows.Count:N0} messages, {rows.Sum(r => r.Recipients.Length):N0} recipients and their attempts in {clock.Elapsed.TotalSeconds:F0} s");
        foreach (var (_, sql) in indexes)
        {
            await ExecuteAsync(connection, sql);
        }

        await ExecuteAsync(connection, "PRAGMA wal_checkpoint(TRUNCATE)");
        log.WriteLine($"admin-api: seeded with {indexes.Count} indexes rebuilt in {clock.Elapsed.TotalSeconds:F0} s");
        return rows.Count;
    }

    private static async Task InsertAsync(SqliteConnection connection, SqliteTransaction transaction, List<AdminApiSpool.SeedMessage> rows, DateTimeOffset now, Random random)
    {
        await using var message = new SqliteCommand(
            """
            INSERT INTO spool_messages (id, sender, size, received_at, origin, client_address, client_helo, body_type, smtputf8, requiretls, completed_at)
            VALUES (@id, @sender, @size, @received_at, 0, @client_address, @client_helo, 0, 0, 0, @completed_at);
            INSERT INTO spool_contents (message_id, content) VALUES (@id, @content)
            """, connection, transaction);
        // Ids bound without a type, as the spool binds them (SqliteParameters.Add), so they are stored the same way.
        var mId = message.Parameters.Add(new SqliteParameter { ParameterName = "@id" });
        var mSender = message.Parameters.Add("@sender", SqliteType.Text);
        var mContent = message.Parameters.Add("@content", SqliteType.Blob);
        var mSize = message.Parameters.Add("@size", SqliteType.Integer);
        var mReceived = message.Parameters.Add("@received_at", SqliteType.Integer);
        var mAddress = message.Parameters.Add("@client_address", SqliteType.Text);
        var mHelo = message.Parameters.Add("@client_helo", SqliteType.Text);
        var mCompleted = message.Parameters.Add("@completed_at", SqliteType.Integer);
        await message.PrepareAsync();

        await using var recipient = new SqliteCommand(
            """
            INSERT INTO spool_recipients (message_id, address, domain, state, attempts, next_attempt_at, last_reply_code, last_enhanced_code,
                last_reply_text, last_remote_host, updated_at, received_at, last_bounce_class)
            VALUES (@message_id, @address, @domain, @state, @attempts, @next, @code, @enhanced, @text, @host, @updated, @received_at, @class)
            """, connection, transaction);
        var rMessage = recipient.Parameters.Add(new SqliteParameter { ParameterName = "@message_id" });
        var rAddress = recipient.Parameters.Add("@address", SqliteType.Text);
        var rDomain = recipient.Parameters.Add("@domain", SqliteType.Text);
        var rState = recipient.Parameters.Add("@state", SqliteType.Integer);
        var rAttempts = recipient.Parameters.Add("@attempts", SqliteType.Integer);
        var rNext = recipient.Parameters.Add("@next", SqliteType.Integer);
        var rCode = recipient.Parameters.Add("@code", SqliteType.Integer);
        var rEnhanced = recipient.Parameters.Add("@enhanced", SqliteType.Text);
        var rText = recipient.Parameters.Add("@text", SqliteType.Text);
        var rHost = recipient.Parameters.Add("@host", SqliteType.Text);
        var rUpdated = recipient.Parameters.Add("@updated", SqliteType.Integer);
        var rReceived = recipient.Parameters.Add("@received_at", SqliteType.Integer);
        var rClass = recipient.Parameters.Add("@class", SqliteType.Text);
        await recipient.PrepareAsync();

        static object Db(object? value) => value ?? DBNull.Value;
        foreach (var m in rows)
        {
            var sender = AdminApiSpool.Sender(m.Sender);
            var content = AdminApiSpool.Content(m, sender);
            mId.Value = m.Id;
            mSender.Value = sender;
            mContent.Value = content;
            mSize.Value = (long)content.Length;
            mReceived.Value = m.ReceivedAt.ToUnixTimeMilliseconds();
            mAddress.Value = "192.0.2." + (1 + (m.Sender % 200)).ToString(CultureInfo.InvariantCulture);
            mHelo.Value = "app" + (m.Sender % 20).ToString(CultureInfo.InvariantCulture) + ".example";
            mCompleted.Value = m.Complete ? m.ReceivedAt.AddSeconds(5).ToUnixTimeMilliseconds() : DBNull.Value;
            await message.ExecuteNonQueryAsync();
            foreach (var r in m.Recipients)
            {
                var o = AdminApiSpool.Outcome(m, r, now, random);
                var domain = AdminApiSpool.DomainName(r.Domain);
                rMessage.Value = m.Id;
                rAddress.Value = AdminApiSpool.Address(r);
                rDomain.Value = domain;
                rState.Value = (long)r.State;
                rAttempts.Value = (long)o.Attempts;
                rNext.Value = o.Next.ToUnixTimeMilliseconds();
                rCode.Value = o.Code is { } code ? (long)code : DBNull.Value;
                rEnhanced.Value = Db(o.Enhanced);
                rText.Value = Db(o.Text);
                rHost.Value = o.Code is null ? DBNull.Value : "mx1." + domain;
                rUpdated.Value = o.Updated.ToUnixTimeMilliseconds();
                rReceived.Value = m.ReceivedAt.ToUnixTimeMilliseconds();
                rClass.Value = Db(o.BounceClass);
                await recipient.ExecuteNonQueryAsync();
            }
        }
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        await using var command = new SqliteCommand(sql, connection, transaction) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync();
    }

    internal static async Task<object?> ScalarAsync(SqliteConnection connection, string sql)
    {
        await using var command = new SqliteCommand(sql, connection) { CommandTimeout = 0 };
        return await command.ExecuteScalarAsync();
    }
}
