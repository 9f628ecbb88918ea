using MailMesh.Mailbox;
using MailMesh.ServiceDefaults;

// "hash-password" prints a Mailbox:Users:<n>:PasswordHash value (a verb of every service: ServiceHost).
return await ServiceHost.RunAsync(args, "mailmesh-mailbox", builder => builder.AddMailbox(), app => app.MapMailbox());
