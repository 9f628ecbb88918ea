using MailMesh.Delivery.Dkim;
using MailMesh.ServiceDefaults;
using MailMesh.Standalone;

// "dkim-keygen", "dkim-record", "dkim-records": make a DKIM key and print the DNS records to publish.
if (await DkimCommands.TryRunAsync(args, Console.Out, Console.Error) is { } exitCode)
{
    return exitCode;
}

return await ServiceHost.RunAsync(
    args,
    "mailmesh-standalone",
    builder => builder.AddStandalone(),
    app => app.MapStandaloneEndpoints(),
    BusTransport.InMemory);
