using MailMesh.Fuzz;
using SharpFuzz;

// MailMesh.Fuzz                      replay stdin once (e.g. a crash reproducer)
// MailMesh.Fuzz file|dir ...         replay each file (a corpus directory: every file in it)
// MailMesh.Fuzz --libfuzzer          run under libFuzzer (build with SharpFuzz instrumentation, see docs/rfcs.md)
// MailMesh.Fuzz --afl                run under AFL (SharpFuzz out-of-process mode)
if (args is ["--libfuzzer"])
{
    Fuzzer.LibFuzzer.Run(span => FuzzTargets.Run(span));
    return 0;
}

if (args is ["--afl"])
{
    Fuzzer.OutOfProcess.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        FuzzTargets.Run(buffer.ToArray());
    });
    return 0;
}

if (args.Length == 0)
{
    using var stdin = Console.OpenStandardInput();
    using var buffer = new MemoryStream();
    stdin.CopyTo(buffer);
    FuzzTargets.Run(buffer.ToArray());
    return 0;
}

var count = 0;
foreach (var argument in args)
{
    var files = Directory.Exists(argument) ? Directory.EnumerateFiles(argument) : [argument];
    foreach (var file in files)
    {
        FuzzTargets.Run(File.ReadAllBytes(file));
        count++;
    }
}

Console.WriteLine($"{count} inputs replayed without a finding");
return 0;
