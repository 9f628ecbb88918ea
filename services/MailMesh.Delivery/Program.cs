using MailMesh.Delivery;
using MailMesh.Delivery.Dkim;
using MailMesh.ServiceDefaults;

// "dkim-keygen", "dkim-record", "dkim-records": make a DKIM key and print the DNS records to publish.
if (await DkimCommands.TryRunAsync(args, Console.Out, Console.Error) is { } exitCode)
{
    return exitCode;
}

// The admin API's DKIM keys (GET /api/v1/admin/dkim/keys, for the admin UI).
return await ServiceHost.RunAsync(args, "mailmesh-delivery", builder => builder.AddDelivery(), app => app.MapDkimAdminEndpoints());
