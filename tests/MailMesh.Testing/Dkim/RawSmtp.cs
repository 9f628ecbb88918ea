using System.Net.Sockets;
using System.Text;

namespace MailMesh.Testing.Dkim;

/// <summary>
/// Sends a message over plain SMTP exactly as given (no client re-serialising it, so a DKIM signature stays intact):
/// EHLO, MAIL, RCPT, DATA with dot-stuffing. Returns the reply to the end of DATA (or to the first refused command).
/// </summary>
public static class RawSmtp
{
    public static async Task<(int Code, string Text)> SendAsync(int port, string sender, string recipient, byte[] message, string helo = "client.test")
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        await using var stream = tcp.GetStream();
        using var reader = new StreamReader(stream, Encoding.ASCII, false, 1024, leaveOpen: true);
        var greeting = await ReplyAsync(reader);
        if (greeting.Code != 220)
        {
            return greeting;
        }

        foreach (var command in new[] { "EHLO " + helo, $"MAIL FROM:<{sender}>", $"RCPT TO:<{recipient}>", "DATA" })
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(command + "\r\n"));
            var reply = await ReplyAsync(reader);
            if (reply.Code >= 400)
            {
                return reply;
            }
        }

        var text = Encoding.Latin1.GetString(message);
        if (!text.EndsWith("\r\n", StringComparison.Ordinal))
        {
            text += "\r\n";
        }

        text = (text.StartsWith('.') ? "." : string.Empty) + text.Replace("\r\n.", "\r\n..", StringComparison.Ordinal);
        await stream.WriteAsync(Encoding.Latin1.GetBytes(text + ".\r\n"));
        var result = await ReplyAsync(reader);
        await stream.WriteAsync("QUIT\r\n"u8.ToArray());
        return result;
    }

    private static async Task<(int Code, string Text)> ReplyAsync(StreamReader reader)
    {
        var lines = new StringBuilder();
        while (true)
        {
            var line = await reader.ReadLineAsync() ?? throw new IOException("connection closed: " + lines);
            lines.Append(line).Append('\n');
            if (line.Length < 4 || line[3] != '-')
            {
                return (int.Parse(line.AsSpan(0, 3), System.Globalization.CultureInfo.InvariantCulture), lines.ToString().TrimEnd());
            }
        }
    }
}
