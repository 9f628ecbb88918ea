using System.Net;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// Issue 7 §4 over real RabbitMQ and PostgreSQL: a work item whose lease is not the recipient's is never sent, a result
/// whose write fails is written again without repeating the SMTP transaction, and the scheduler resumes after its
/// database refused connections for a while (a private PostgreSQL cluster, stopped and started by the test).
/// </summary>
public sealed class ReliabilityTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_work_item_whose_lease_was_re_issued_is_not_sent()
    {
        await using var mesh = await Mesh.CreateAsync();
        await mesh.StartAsync();

        var first = await StoreAsync(mesh, "first@" + DistributedMesh.DestinationDomain);
        var delivered = await mesh.WaitForStatusAsync(first, s => s.Recipients[0].State == RecipientState.Delivered, Patience);
        Assert.Single(await mesh.Destination.WaitForMessagesAsync(1, Patience));

        // A stale copy of the work (a lease that is no longer the recipient's), still looking valid for a minute: a
        // Delivery that trusted the message's own expiry would send it again.
        var bus = mesh.Host(MeshService.Queue).Services.GetRequiredService<IBus>();
        await bus.Publish(new DeliverMessage
        {
            MessageId = first,
            Domain = DistributedMesh.DestinationDomain,
            LeaseId = Guid.NewGuid(),
            LeaseExpiresAt = DateTimeOffset.UtcNow.AddMinutes(1),
            LeaseDuration = TimeSpan.FromMinutes(1),
            Recipients = [new DeliveryRecipient { RecipientId = delivered.Recipients[0].RecipientId, Address = "first@" + DistributedMesh.DestinationDomain, Attempt = 2 }],
        });

        // Then more work behind it: once that is delivered, the stale item (published earlier) has been consumed.
        var second = await StoreAsync(mesh, "second@" + DistributedMesh.DestinationDomain);
        await mesh.WaitForStatusAsync(second, s => s.Recipients[0].State == RecipientState.Delivered, Patience);

        var messages = await mesh.Destination.WaitForMessagesAsync(2, Patience);
        Assert.Equal(2, messages.Count);
        Assert.Single(messages, m => m.Recipients.Contains("first@" + DistributedMesh.DestinationDomain));
        Assert.Equal(1, (await mesh.Spool.GetStatusAsync(first, default))!.Recipients[0].Attempts);
    }

    [Fact]
    public async Task A_result_whose_write_fails_once_is_stored_once_and_the_transaction_ran_once()
    {
        await using var mesh = await Mesh.CreateAsync();
        await mesh.StartAsync();

        // The first write of a result fails in the database (a sequence is not rolled back with the failed statement).
        await using (var connection = new NpgsqlConnection(mesh.Database.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                """
                CREATE SEQUENCE public.result_writes;
                CREATE FUNCTION public.fail_first_result() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF nextval('public.result_writes') = 1 THEN
                        RAISE EXCEPTION 'injected: the first result write fails';
                    END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER fail_first_result BEFORE INSERT ON spool.results
                    FOR EACH ROW EXECUTE FUNCTION public.fail_first_result();
                """, connection);
            await command.ExecuteNonQueryAsync();
        }

        var id = await StoreAsync(mesh, "once@" + DistributedMesh.DestinationDomain);

        var status = await mesh.WaitForStatusAsync(id, s => s.Recipients[0].State == RecipientState.Delivered, Patience);
        Assert.Equal(1, status.Recipients[0].Attempts);
        Assert.Single(status.Recipients[0].History);
        Assert.Single(await mesh.Destination.WaitForMessagesAsync(1, Patience));
        Assert.Single(mesh.Destination.Messages);
    }

    [Fact]
    public async Task The_scheduler_resumes_after_the_database_refused_connections_for_a_while()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await using var mesh = await Mesh.CreateAsync();
        mesh.Settings["ConnectionStrings:Spool"] = postgres.ConnectionString;
        mesh.Settings["Queue:StoreTimeout"] = "00:00:02";
        mesh.Settings["Queue:PublishTimeout"] = "00:00:02";
        mesh.Settings["Queue:MaxRoundBackoff"] = "00:00:01";
        mesh.Settings["Queue:StalledAfter"] = "00:00:06";
        await mesh.StartAsync();
        using var queue = DistributedMesh.HttpClientFor(mesh.Host(MeshService.Queue));

        var before = await StoreAsync(mesh, "before@" + DistributedMesh.DestinationDomain);
        await mesh.WaitForStatusAsync(before, s => s.Recipients[0].State == RecipientState.Delivered, Patience);

        // The database goes away: rounds fail, and readiness says so once no round has completed for StalledAfter.
        await postgres.StopServerAsync();
        await WaitForReadinessAsync(queue, HttpStatusCode.ServiceUnavailable);

        // It comes back: the scheduler resumes on its own, claims new work and readiness recovers.
        await postgres.StartServerAsync();
        var after = await StoreAsync(mesh, "after@" + DistributedMesh.DestinationDomain);
        await mesh.WaitForStatusAsync(after, s => s.Recipients[0].State == RecipientState.Delivered, Patience);
        await WaitForReadinessAsync(queue, HttpStatusCode.OK);
        Assert.Equal(2, (await mesh.Destination.WaitForMessagesAsync(2, Patience)).Count);
    }

    private static async Task WaitForReadinessAsync(HttpClient client, HttpStatusCode expected)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        HttpStatusCode last;
        do
        {
            using var response = await client.GetAsync(new Uri("/readyz", UriKind.Relative));
            last = response.StatusCode;
            if (last == expected)
            {
                return;
            }
        }
        while (DateTimeOffset.UtcNow < deadline && await poll.WaitForNextTickAsync());

        throw new TimeoutException($"/readyz answered {last}, never {expected}");
    }

    /// <summary>Stores a message straight into the spool (as Ingress would after its checks); the scheduler finds it.</summary>
    private static async Task<Guid> StoreAsync(DistributedMesh mesh, string recipient)
    {
        var id = Guid.NewGuid();
        var content = Encoding.ASCII.GetBytes(
            $"From: <sender@{DistributedMesh.SenderDomain}>\r\nTo: <{recipient}>\r\nSubject: reliability {id}\r\nMessage-ID: <{id}@origin.test>\r\n\r\nbody\r\n");
        await mesh.Spool.StoreAsync(
            new NewMessage
            {
                Id = id,
                Sender = "sender@" + DistributedMesh.SenderDomain,
                Recipients = [new NewRecipient { Address = recipient }],
                Content = content,
                ReceivedAt = DateTimeOffset.UtcNow,
            },
            CancellationToken.None);
        return id;
    }
}
