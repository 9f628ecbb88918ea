using MailMesh.Admin;
using MailMesh.ServiceDefaults;

// The admin UI on its own (distributed mode). "hash-password" prints the Admin:Users:<n>:PasswordHash for a password.
// The UI talks to nothing over the bus; the in-memory transport keeps ServiceHost's shape without a RabbitMQ connection.
return await ServiceHost.RunAsync(
    args,
    "mailmesh-admin",
    builder => builder.AddAdminUi(),
    app => app.MapAdminUi(),
    BusTransport.InMemory);
