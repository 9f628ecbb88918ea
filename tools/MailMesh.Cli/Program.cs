using System.Collections;
using MailMesh.Cli;

var environment = Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
    .ToDictionary(e => (string)e.Key, e => (string?)e.Value, StringComparer.Ordinal);
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};
return await new MailMeshCli(Console.In, Console.Out, Console.Error, environment).RunAsync(args, cancel.Token);
