using MailMesh.Testing.Infrastructure;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>
/// The free ports the launchers hand to MailMesh processes. A fresh CI run saw a standalone start fail with "address
/// already in use" on its HTTP port: ports are chosen free but bound only when the process starts, so two choices made
/// before either binds must differ.
/// </summary>
public sealed class LoopbackPortTests
{
    [Fact]
    public void A_port_is_never_handed_out_twice_before_it_is_bound()
    {
        // 1,000 draws from the ~12,700 candidates below the ephemeral range: without a memory of what was handed out,
        // about 39 of them repeat an earlier port (a pair of draws, as each launch makes, repeats 1 time in 12,700).
        var ports = Enumerable.Range(0, 1000).Select(_ => LoopbackPort.Free()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
    }
}
