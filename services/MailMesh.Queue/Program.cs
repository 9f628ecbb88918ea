using MailMesh.Queue;
using MailMesh.ServiceDefaults;

return await ServiceHost.RunAsync(args, "mailmesh-queue", builder => builder.AddQueue(), app => app.MapQueueEndpoints().MapQueueAdminEndpoints());
