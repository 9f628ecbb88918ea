using MailMesh.Storage.Mailboxes;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>A stored message is read as prefix then body, in any chunk size, from any position.</summary>
public sealed class PrefixedStreamTests
{
    private static readonly byte[] Prefix = "Delivered-To: a@b\r\n"u8.ToArray();
    private static readonly byte[] Body = [.. Enumerable.Range(0, 300).Select(i => (byte)i)];
    private static readonly byte[] Whole = [.. Prefix, .. Body];

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(19)]
    [InlineData(4096)]
    public async Task Reads_the_prefix_then_the_body_in_any_chunk_size(int chunk)
    {
        await using var stream = new PrefixedStream(Prefix, Body);
        var read = new List<byte>();
        var buffer = new byte[chunk];
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0)
        {
            read.AddRange(buffer.AsSpan(0, n).ToArray());
        }

        Assert.Equal(Whole, read);
        Assert.Equal(Whole.Length, stream.Length);
    }

    [Fact]
    public void Seeks_across_the_boundary()
    {
        using var stream = new PrefixedStream(Prefix, Body);
        stream.Seek(Prefix.Length - 2, SeekOrigin.Begin);
        var buffer = new byte[4];
        Assert.Equal(4, stream.Read(buffer, 0, 4));
        Assert.Equal(Whole[(Prefix.Length - 2)..(Prefix.Length + 2)], buffer);
        stream.Seek(-1, SeekOrigin.End);
        Assert.Equal(1, stream.Read(buffer, 0, 4));
        Assert.Equal(Body[^1], buffer[0]);
        Assert.Equal(0, stream.Read(buffer, 0, 4));
    }
}
