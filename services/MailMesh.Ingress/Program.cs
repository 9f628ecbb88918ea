using MailMesh.Ingress;
using MailMesh.Ingress.Auth;
using MailMesh.Ingress.Http;
using MailMesh.ServiceDefaults;

// "hash-password": read a password from stdin and print the Ingress:Auth:Users:<n>:PasswordHash value for it.
if (args is ["hash-password", ..])
{
    return await PasswordHashCommand.RunAsync(Console.In, Console.Out, Console.Error);
}

return await ServiceHost.RunAsync(
    args,
    "mailmesh-ingress",
    builder => builder.AddIngress().AddIngressHttpApi(),
    app => app.MapIngressHttpApi());
