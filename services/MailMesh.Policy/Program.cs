using MailMesh.Policy;
using MailMesh.ServiceDefaults;

return await ServiceHost.RunAsync(args, "mailmesh-policy", builder => builder.AddPolicy(), app => app.MapPolicyEndpoints().MapPolicyAdminEndpoints());
