using System.Globalization;
using System.Text;
using MailMesh.Storage.Mailboxes;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// The mail store in PostgreSQL (schema <c>mailbox</c>), shared by every Mailbox replica. Every write is one transaction
/// with synchronous commit that locks the account's row first. Changes reach other replicas by
/// <c>NOTIFY mailmesh_mailbox</c>, sent in the transaction (so delivered only if it commits); a replica LISTENs on one
/// dedicated connection from its first watch on, and tells every watch to re-read everything whenever that connection
/// is (re)established, since a signal sent while it was down is lost.
/// </summary>
internal sealed partial class PostgresMailStore(NpgsqlDataSource dataSource, ILogger<PostgresMailStore> logger, TimeProvider time)
    : SqlMailStore, IAsyncDisposable
{
    public const string Channel = "mailmesh_mailbox";

    private const string NotifySql = "SELECT pg_notify('mailmesh_mailbox', @payload)";

    // PostgreSQL's limit is 8000 bytes; past this a notification names accounts only.
    private const int MaxPayload = 7000;
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(30);

    private readonly string _instance = Guid.NewGuid().ToString("N");
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private Task? _listener;

    protected override async Task<T> ReadAsync<T>(Func<MailDb, Task<T>> operation, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await operation(new PostgresDialect(connection, null));
    }

    protected override async Task<T> WriteAsync<T>(Func<MailDb, Task<T>> operation, long size, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var db = new PostgresDialect(connection, transaction);
        var result = await operation(db);
        if (db.Changes.Count > 0)
        {
            await using var notify = new NpgsqlCommand(NotifySql, connection, transaction);
            notify.Parameters.Add(new NpgsqlParameter<string>("payload", Payload(_instance, db.Changes)));
            await notify.ExecuteNonQueryAsync(CancellationToken.None);
        }

        await transaction.CommitAsync(CancellationToken.None);
        foreach (var change in db.Changes)
        {
            Hub.Publish(change);
        }

        return result;
    }

    protected override void OnWatched()
    {
        lock (_gate)
        {
            _listener ??= Task.Run(() => ListenAsync(_stop.Token));
        }
    }

    /// <summary>"instance account:folder;account:-;…" ("-": any folder).</summary>
    internal static string Payload(string instance, IEnumerable<MailboxChange> changes)
    {
        var text = new StringBuilder(instance);
        foreach (var change in changes)
        {
            text.Append(' ').Append(change.AccountId.ToString(CultureInfo.InvariantCulture)).Append(':')
                .Append(change.FolderId is { } folder ? folder.ToString(CultureInfo.InvariantCulture) : "-");
        }

        if (text.Length <= MaxPayload)
        {
            return text.ToString();
        }

        text.Clear().Append(instance);
        foreach (var account in changes.Select(c => c.AccountId).Distinct())
        {
            if (text.Length > MaxPayload)
            {
                return instance + " *";
            }

            text.Append(' ').Append(account.ToString(CultureInfo.InvariantCulture)).Append(":-");
        }

        return text.ToString();
    }

    private void OnNotification(string payload)
    {
        var parts = payload.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts[0] == _instance)
        {
            return; // our own change: already signalled after the commit
        }

        foreach (var part in parts.AsSpan(1))
        {
            if (part == "*")
            {
                Hub.PublishAll();
                return;
            }

            var colon = part.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && long.TryParse(part.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var account))
            {
                long? folder = long.TryParse(part.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;
                Hub.Publish(new MailboxChange(account, folder));
            }
        }
    }

    private async Task ListenAsync(CancellationToken stop)
    {
        var failures = 0;
        while (!stop.IsCancellationRequested)
        {
            NpgsqlConnection? connection = null;
            try
            {
                connection = await dataSource.OpenConnectionAsync(stop);
                connection.Notification += (_, e) => OnNotification(e.Payload);
                await using (var listen = new NpgsqlCommand("LISTEN " + Channel, connection))
                {
                    await listen.ExecuteNonQueryAsync(stop);
                }

                // Signals sent before this point were not heard: every watch re-reads once.
                Hub.PublishAll();
                failures = 0;
                LogListening(logger);
                while (true)
                {
                    if (!await connection.WaitAsync(ProbeInterval, stop))
                    {
                        // Quiet for a while: prove the connection still carries (a dead peer would leave WaitAsync waiting).
                        await using var probe = new NpgsqlCommand("SELECT 1", connection);
                        await probe.ExecuteScalarAsync(stop);
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
#pragma warning disable CA1031 // the listener outlives any failure: it reconnects with back-off
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failures++;
                LogListenFailed(logger, ex);
                Hub.PublishAll();
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, 1 << Math.Min(failures, 5))), time, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            finally
            {
                if (connection is not null)
                {
                    await CloseListenerAsync(connection);
                }
            }
        }
    }

    /// <summary>Stops listening before the connection goes back to the pool (which does not reset it).</summary>
    private static async Task CloseListenerAsync(NpgsqlConnection connection)
    {
        try
        {
            if (connection.State == System.Data.ConnectionState.Open)
            {
                await using var unlisten = new NpgsqlCommand("UNLISTEN *", connection);
                await unlisten.ExecuteNonQueryAsync(CancellationToken.None);
            }
        }
        catch (NpgsqlException)
        {
            // A broken connection is not returned to the pool.
        }
        catch (InvalidOperationException)
        {
        }

        await connection.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        Task? listener;
        lock (_gate)
        {
            listener = _listener;
        }

        if (listener is not null)
        {
            await listener;
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = 6101, Level = LogLevel.Debug, Message = "Listening for mailbox changes of other replicas")]
    private static partial void LogListening(ILogger logger);

    [LoggerMessage(EventId = 6102, Level = LogLevel.Warning, Message = "The mailbox change listener lost its connection; reconnecting")]
    private static partial void LogListenFailed(ILogger logger, Exception exception);
}
