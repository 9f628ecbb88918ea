using Microsoft.Data.Sqlite;

namespace MailMesh.Storage.Sqlite;

/// <summary><see cref="IWebhookStore"/> over spool_webhook_endpoints and spool_webhook_deliveries; each change and its audit row in one write transaction.</summary>
public sealed class SqliteWebhookStore(SqliteDatabase database) : IWebhookStore
{
    private const string Columns = "id, url, secret, events, enabled, created_at, created_by, updated_at, updated_by";

    private const string AddSql =
        """
        INSERT INTO spool_webhook_endpoints (id, url, secret, events, enabled, created_at, created_by)
        VALUES (@id, @url, @secret, @events, @enabled, @at, @actor)
        """;

    private const string UpdateSql =
        """
        UPDATE spool_webhook_endpoints
        SET url = @url, secret = @secret, events = @events, enabled = @enabled, updated_at = @at, updated_by = @actor
        WHERE id = @id
        """;

    private const string RecordSql =
        """
        INSERT INTO spool_webhook_deliveries (endpoint_id, event_id, event_type, message_id, at, status_code, error, duration_ms)
        SELECT @endpoint_id, @event_id, @event_type, @message_id, @at, @status_code, @error, @duration_ms
        WHERE EXISTS (SELECT 1 FROM spool_webhook_endpoints WHERE id = @endpoint_id)
        """;

    private const string HistorySql =
        """
        SELECT id, endpoint_id, event_id, event_type, message_id, at, status_code, error, duration_ms
        FROM spool_webhook_deliveries
        WHERE endpoint_id = @endpoint_id AND id < @before
        ORDER BY id DESC
        LIMIT @limit
        """;

    public async Task<IReadOnlyList<WebhookEndpoint>> ListEndpointsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Columns} FROM spool_webhook_endpoints ORDER BY created_at, id";
        return await ReadEndpointsAsync(command, cancellationToken);
    }

    public async Task<WebhookEndpoint?> GetEndpointAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Columns} FROM spool_webhook_endpoints WHERE id = @id";
        command.Add("@id", id.ToString());
        return (await ReadEndpointsAsync(command, cancellationToken)).SingleOrDefault();
    }

    public Task AddEndpointAsync(WebhookEndpoint endpoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var at = StoreArguments.ToUnixMs(endpoint.CreatedAt);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(AddSql);
            AddValues(command, endpoint, at, endpoint.CreatedBy);
            await command.ExecuteNonQueryAsync(CancellationToken.None);
            await SqliteCredentialStore.AuditAsync(write, at, endpoint.CreatedBy, WebhookAudit.Created, WebhookAudit.Target(endpoint.Id, endpoint.Url));
            return true;
        }, 0, cancellationToken);
    }

    public Task<bool> UpdateEndpointAsync(WebhookEndpoint endpoint, string action, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(action);
        var at = StoreArguments.ToUnixMs(endpoint.UpdatedAt ?? throw new ArgumentException("UpdatedAt is required", nameof(endpoint)));
        var actor = endpoint.UpdatedBy ?? throw new ArgumentException("UpdatedBy is required", nameof(endpoint));
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(UpdateSql);
            AddValues(command, endpoint, at, actor);
            if (await command.ExecuteNonQueryAsync(CancellationToken.None) == 0)
            {
                return false;
            }

            await SqliteCredentialStore.AuditAsync(write, at, actor, action, WebhookAudit.Target(endpoint.Id, endpoint.Url));
            return true;
        }, 0, cancellationToken);
    }

    public Task<bool> DeleteEndpointAsync(Guid id, string actor, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(actor);
        var atMs = StoreArguments.ToUnixMs(at);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand("DELETE FROM spool_webhook_endpoints WHERE id = @id RETURNING url");
            command.Add("@id", id.ToString());
            if (await command.ExecuteScalarAsync(CancellationToken.None) is not string url)
            {
                return false;
            }

            await SqliteCredentialStore.AuditAsync(write, atMs, actor, WebhookAudit.Deleted, WebhookAudit.Target(id, url));
            return true;
        }, 0, cancellationToken);
    }

    public Task RecordDeliveriesAsync(IReadOnlyList<WebhookDelivery> deliveries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(deliveries);
        if (deliveries.Count == 0)
        {
            return Task.CompletedTask;
        }

        return database.WriteAsync(async write =>
        {
            foreach (var d in deliveries)
            {
                await using var command = write.CreateCommand(RecordSql);
                command.Add("@endpoint_id", d.EndpointId.ToString());
                command.Add("@event_id", d.EventId);
                command.Add("@event_type", d.EventType);
                command.Add("@message_id", d.MessageId?.ToString());
                command.Add("@at", StoreArguments.ToUnixMs(d.At));
                command.Add("@status_code", d.StatusCode);
                command.Add("@error", d.Error);
                command.Add("@duration_ms", d.DurationMs);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return true;
        }, 0, cancellationToken);
    }

    public async Task<IReadOnlyList<WebhookDelivery>> ListDeliveriesAsync(Guid endpointId, long? before, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = HistorySql;
        command.Add("@endpoint_id", endpointId.ToString());
        command.Add("@before", before ?? long.MaxValue);
        command.Add("@limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var list = new List<WebhookDelivery>();
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new WebhookDelivery
            {
                Id = reader.GetInt64(0),
                EndpointId = Guid.Parse(reader.GetString(1)),
                EventId = reader.GetString(2),
                EventType = reader.GetString(3),
                MessageId = reader.IsDBNull(4) ? null : Guid.Parse(reader.GetString(4)),
                At = reader.Timestamp(5),
                StatusCode = reader.IsDBNull(6) ? null : reader.GetInt32(6),
                Error = reader.NullableString(7),
                DurationMs = reader.GetInt32(8),
            });
        }

        return list;
    }

    public Task<int> PruneDeliveriesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        var before = StoreArguments.ToUnixMs(olderThan);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand("DELETE FROM spool_webhook_deliveries WHERE at < @before");
            command.Add("@before", before);
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);
    }

    private static void AddValues(SqliteCommand command, WebhookEndpoint endpoint, long at, string actor)
    {
        command.Add("@id", endpoint.Id.ToString());
        command.Add("@url", endpoint.Url);
        command.Add("@secret", endpoint.Secret);
        command.Add("@events", endpoint.Events);
        command.Add("@enabled", endpoint.Enabled ? 1 : 0);
        command.Add("@at", at);
        command.Add("@actor", actor);
    }

    private static async Task<IReadOnlyList<WebhookEndpoint>> ReadEndpointsAsync(SqliteCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var list = new List<WebhookEndpoint>();
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new WebhookEndpoint
            {
                Id = Guid.Parse(reader.GetString(0)),
                Url = reader.GetString(1),
                Secret = reader.NullableString(2),
                Events = reader.NullableString(3),
                Enabled = reader.GetInt64(4) != 0,
                CreatedAt = reader.Timestamp(5),
                CreatedBy = reader.GetString(6),
                UpdatedAt = reader.NullableTimestamp(7),
                UpdatedBy = reader.NullableString(8),
            });
        }

        return list;
    }
}
