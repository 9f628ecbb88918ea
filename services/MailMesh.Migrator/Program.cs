using MailMesh.Migrator;

return await MigratorApp.RunAsync(args, TimeProvider.System, Console.Error, CancellationToken.None);
