using BenchmarkDotNet.Running;

// Every benchmark in this assembly, one folder per area. Run in Release and pick with a filter:
//   dotnet run -c Release --project tools/MailMesh.Benchmarks -- --filter '*Sqlite*'
// (typeof(Program) would be ambiguous: MailMesh.Queue, referenced for DsnBuilder, has a public Program too.)
// Memory per idle IMAP session is one measurement, not a benchmark:
//   dotnet run -c Release --project tools/MailMesh.Benchmarks -- --idle-sessions 500
if (args is ["--idle-sessions", var count])
{
    await MailMesh.Benchmarks.Mailbox.IdleSessionMemory.RunAsync(int.Parse(count, System.Globalization.CultureInfo.InvariantCulture));
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(MailMesh.Benchmarks.Storage.SqliteSpoolStoreBenchmarks).Assembly).Run(args);
