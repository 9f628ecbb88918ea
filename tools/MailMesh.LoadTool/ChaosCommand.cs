using System.Runtime.InteropServices;
using MailMesh.Chaos;

namespace MailMesh.LoadTool;

/// <summary>
/// <c>--chaos</c>: the fault-injection run of tools/MailMesh.Chaos with the results table on stdout. Exit 0: nothing
/// lost and duplicates within <c>--max-duplicate-ratio</c>; 1: the run found loss or too many duplicates (or a fault
/// it could not inject); 2: the run could not be carried out; 64: bad options. Ctrl-C and SIGTERM stop it, with the
/// same clean-up.
/// </summary>
internal static class ChaosCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        ChaosOptions options;
        try
        {
            options = ChaosOptions.Parse(args);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            await Console.Error.WriteLineAsync("chaos: " + ex.Message);
            return 64;
        }

        using var stop = new CancellationTokenSource();
        void Cancel(PosixSignalContext context)
        {
            context.Cancel = true;
            Console.Error.WriteLine($"chaos: {context.Signal}: stopping and cleaning up");
            stop.Cancel();
        }

        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        try
        {
            var result = await ChaosRun.RunAsync(options, Console.Out, stop.Token);
            Console.WriteLine();
            Console.WriteLine(result.Format());
            return result.Passed ? 0 : 1;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync(stop.IsCancellationRequested ? "chaos: stopped" : $"chaos: the run took longer than --timeout ({options.Timeout.TotalSeconds:F0} s)");
            return 2;
        }
        catch (Exception ex)
        {
            await Console.Error.WriteLineAsync("chaos: the run could not be carried out: " + ex);
            return 2;
        }
    }
}
