using MailMesh.Ingress;
using MailMesh.Ingress.Http;
using MailMesh.ServiceDefaults;

// "hash-password" (the Ingress:Auth:Users:<n>:PasswordHash value for a password) is a verb of every service: ServiceHost.
return await ServiceHost.RunAsync(
    args,
    "mailmesh-ingress",
    builder => builder.AddIngress().AddIngressHttpApi(),
    app => app.MapIngressHttpApi());
