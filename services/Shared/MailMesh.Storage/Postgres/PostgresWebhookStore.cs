using Npgsql;
using NpgsqlTypes;

namespace MailMesh.Storage.Postgres;

/// <summary><see cref="IWebhookStore"/> over spool.webhook_endpoints and spool.webhook_deliveries; each change and its audit row in one statement.</summary>
public sealed class PostgresWebhookStore(NpgsqlDataSource dataSource) : IWebhookStore
{
    private const string Columns = "id, url, secret, events, enabled, created_at, created_by, updated_at, updated_by";

    private const string AddSql =
        """
        WITH added AS (
            INSERT INTO spool.webhook_endpoints (id, url, secret, events, enabled, created_at, created_by)
            VALUES (@id, @url, @secret, @events, @enabled, @at, @actor)
            RETURNING id)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, @target, 1, 0 FROM added
        """;

    private const string UpdateSql =
        """
        WITH updated AS (
            UPDATE spool.webhook_endpoints
            SET url = @url, secret = @secret, events = @events, enabled = @enabled, updated_at = @at, updated_by = @actor
            WHERE id = @id
            RETURNING id)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, @target, 1, 0 FROM updated
        """;

    private const string DeleteSql =
        """
        WITH deleted AS (
            DELETE FROM spool.webhook_endpoints WHERE id = @id RETURNING id, url)
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        SELECT @at, @actor, @action, 'webhook ' || id::text || ' ' || url, 1, 0 FROM deleted
        """;

    // Rows of an endpoint deleted meanwhile are dropped rather than failing the whole batch; ids follow the batch's order.
    private const string RecordSql =
        """
        INSERT INTO spool.webhook_deliveries (endpoint_id, event_id, event_type, message_id, at, status_code, error, duration_ms)
        SELECT d.endpoint_id, d.event_id, d.event_type, d.message_id, d.at, d.status_code, d.error, d.duration_ms
        FROM unnest(@endpoint_id, @event_id, @event_type, @message_id, @at, @status_code, @error, @duration_ms)
            WITH ORDINALITY AS d (endpoint_id, event_id, event_type, message_id, at, status_code, error, duration_ms, n)
        WHERE EXISTS (SELECT 1 FROM spool.webhook_endpoints e WHERE e.id = d.endpoint_id)
        ORDER BY d.n
        """;

    private const string HistorySql =
        """
        SELECT id, endpoint_id, event_id, event_type, message_id, at, status_code, error, duration_ms
        FROM spool.webhook_deliveries
        WHERE endpoint_id = @endpoint_id AND id < @before
        ORDER BY id DESC
        LIMIT @limit
        """;

    public async Task<IReadOnlyList<WebhookEndpoint>> ListEndpointsAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM spool.webhook_endpoints ORDER BY created_at, id");
        return await ReadEndpointsAsync(command, cancellationToken);
    }

    public async Task<WebhookEndpoint?> GetEndpointAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM spool.webhook_endpoints WHERE id = @id");
        command.Parameters.Add(new NpgsqlParameter<Guid>("id", id));
        return (await ReadEndpointsAsync(command, cancellationToken)).SingleOrDefault();
    }

    public async Task AddEndpointAsync(WebhookEndpoint endpoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        await using var command = dataSource.CreateCommand(AddSql);
        AddValues(command, endpoint, endpoint.CreatedAt, endpoint.CreatedBy, WebhookAudit.Created);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<bool> UpdateEndpointAsync(WebhookEndpoint endpoint, string action, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(action);
        await using var command = dataSource.CreateCommand(UpdateSql);
        AddValues(command, endpoint, endpoint.UpdatedAt ?? throw new ArgumentException("UpdatedAt is required", nameof(endpoint)),
            endpoint.UpdatedBy ?? throw new ArgumentException("UpdatedBy is required", nameof(endpoint)), action);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async Task<bool> DeleteEndpointAsync(Guid id, string actor, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(actor);
        await using var command = dataSource.CreateCommand(DeleteSql);
        command.Parameters.Add(new NpgsqlParameter<Guid>("id", id));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("at", at.ToUniversalTime()));
        command.Parameters.Add(new NpgsqlParameter<string>("actor", actor));
        command.Parameters.Add(new NpgsqlParameter<string>("action", WebhookAudit.Deleted));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async Task RecordDeliveriesAsync(IReadOnlyList<WebhookDelivery> deliveries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(deliveries);
        if (deliveries.Count == 0)
        {
            return;
        }

        await using var command = dataSource.CreateCommand(RecordSql);
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("endpoint_id", [.. deliveries.Select(d => d.EndpointId)]));
        command.Parameters.Add(new NpgsqlParameter<string[]>("event_id", [.. deliveries.Select(d => d.EventId)]));
        command.Parameters.Add(new NpgsqlParameter<string[]>("event_type", [.. deliveries.Select(d => d.EventType)]));
        command.Parameters.Add(new NpgsqlParameter("message_id", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = deliveries.Select(d => d.MessageId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset[]>("at", [.. deliveries.Select(d => d.At.ToUniversalTime())]));
        command.Parameters.Add(new NpgsqlParameter("status_code", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = deliveries.Select(d => d.StatusCode).ToArray() });
        command.Parameters.Add(new NpgsqlParameter("error", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = deliveries.Select(d => d.Error).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<int[]>("duration_ms", [.. deliveries.Select(d => d.DurationMs)]));
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            // An endpoint was deleted between the check and the insert: its history is gone anyway.
        }
    }

    public async Task<IReadOnlyList<WebhookDelivery>> ListDeliveriesAsync(Guid endpointId, long? before, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = dataSource.CreateCommand(HistorySql);
        command.Parameters.Add(new NpgsqlParameter<Guid>("endpoint_id", endpointId));
        command.Parameters.Add(new NpgsqlParameter<long>("before", before ?? long.MaxValue));
        command.Parameters.Add(new NpgsqlParameter<int>("limit", limit));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var list = new List<WebhookDelivery>();
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new WebhookDelivery
            {
                Id = reader.GetInt64(0),
                EndpointId = reader.GetGuid(1),
                EventId = reader.GetString(2),
                EventType = reader.GetString(3),
                MessageId = reader.IsDBNull(4) ? null : reader.GetGuid(4),
                At = reader.GetFieldValue<DateTimeOffset>(5),
                StatusCode = reader.IsDBNull(6) ? null : reader.GetInt32(6),
                Error = reader.IsDBNull(7) ? null : reader.GetString(7),
                DurationMs = reader.GetInt32(8),
            });
        }

        return list;
    }

    public async Task<int> PruneDeliveriesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM spool.webhook_deliveries WHERE at < @before");
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("before", olderThan.ToUniversalTime()));
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static void AddValues(NpgsqlCommand command, WebhookEndpoint endpoint, DateTimeOffset at, string actor, string action)
    {
        command.Parameters.Add(new NpgsqlParameter<Guid>("id", endpoint.Id));
        command.Parameters.Add(new NpgsqlParameter<string>("url", endpoint.Url));
        command.Parameters.Add(new NpgsqlParameter("secret", NpgsqlDbType.Text) { Value = (object?)endpoint.Secret ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("events", NpgsqlDbType.Text) { Value = (object?)endpoint.Events ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<bool>("enabled", endpoint.Enabled));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("at", at.ToUniversalTime()));
        command.Parameters.Add(new NpgsqlParameter<string>("actor", actor));
        command.Parameters.Add(new NpgsqlParameter<string>("action", action));
        command.Parameters.Add(new NpgsqlParameter<string>("target", WebhookAudit.Target(endpoint.Id, endpoint.Url)));
    }

    private static async Task<IReadOnlyList<WebhookEndpoint>> ReadEndpointsAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var list = new List<WebhookEndpoint>();
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new WebhookEndpoint
            {
                Id = reader.GetGuid(0),
                Url = reader.GetString(1),
                Secret = reader.IsDBNull(2) ? null : reader.GetString(2),
                Events = reader.IsDBNull(3) ? null : reader.GetString(3),
                Enabled = reader.GetBoolean(4),
                CreatedAt = reader.GetFieldValue<DateTimeOffset>(5),
                CreatedBy = reader.GetString(6),
                UpdatedAt = reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7),
                UpdatedBy = reader.IsDBNull(8) ? null : reader.GetString(8),
            });
        }

        return list;
    }
}
