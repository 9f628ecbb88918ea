using MailMesh.Mailbox;
using MailMesh.ServiceDefaults;

return await ServiceHost.RunAsync(args, "mailmesh-mailbox", builder => builder.AddMailbox());
