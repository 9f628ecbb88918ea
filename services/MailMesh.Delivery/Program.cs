using MailMesh.Delivery;
using MailMesh.Delivery.Dkim;
using MailMesh.ServiceDefaults;

// "dkim-keygen", "dkim-record", "dkim-records": make a DKIM key and print the DNS records to publish.
if (await DkimCommands.TryRunAsync(args, Console.Out, Console.Error) is { } exitCode)
{
    return exitCode;
}

return await ServiceHost.RunAsync(args, "mailmesh-delivery", builder => builder.AddDelivery());
