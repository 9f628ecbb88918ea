using BenchmarkDotNet.Running;

// Every benchmark in this assembly, one folder per area. Run in Release and pick with a filter:
//   dotnet run -c Release --project tools/MailMesh.Benchmarks -- --filter '*Sqlite*'
// (typeof(Program) would be ambiguous: MailMesh.Queue, referenced for DsnBuilder, has a public Program too.)
BenchmarkSwitcher.FromAssembly(typeof(MailMesh.Benchmarks.Storage.SqliteSpoolStoreBenchmarks).Assembly).Run(args);
