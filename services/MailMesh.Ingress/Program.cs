using MailMesh.Ingress;
using MailMesh.ServiceDefaults;

return await ServiceHost.RunAsync(args, "mailmesh-ingress", builder => builder.AddIngress());
