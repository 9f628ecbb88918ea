using MailMesh.Delivery;
using MailMesh.ServiceDefaults;

return await ServiceHost.RunAsync(args, "mailmesh-delivery", builder => builder.AddDelivery());
