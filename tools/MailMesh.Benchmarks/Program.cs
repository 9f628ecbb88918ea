using BenchmarkDotNet.Running;

// Every benchmark in this assembly, one folder per area. Run in Release and pick with a filter:
//   dotnet run -c Release --project tools/MailMesh.Benchmarks -- --filter '*Sqlite*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
