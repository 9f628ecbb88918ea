using MailMesh.Dns;
using MailMesh.ServiceDefaults;

return await ServiceHost.RunAsync(args, "mailmesh-dns", builder => builder.AddDns());
