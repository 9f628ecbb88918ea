using MailMesh.ServiceDefaults;
using MailMesh.Standalone;

return await ServiceHost.RunAsync(
    args,
    "mailmesh-standalone",
    builder => builder.AddStandalone(),
    app => app.MapStandaloneEndpoints(),
    BusTransport.InMemory);
