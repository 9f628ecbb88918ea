namespace MailMesh.Smtp.Client;

/// <summary>
/// One complete reply from an SMTP server (RFC 5321 §4.2): the three-digit code, the RFC 3463 enhanced status code
/// when the server sent one (RFC 2034 §4), and the text of every line with the code and enhanced code removed.
/// </summary>
public sealed class ServerReply
{
    public ServerReply(int code, string? enhancedCode, IReadOnlyList<string> lines)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(code, 200);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(code, 599);
        Code = code;
        EnhancedCode = enhancedCode;
        Lines = lines;
    }

    /// <summary>The reply code, 200..599 (RFC 5321 §4.2.1: the first digit is 2..5).</summary>
    public int Code { get; }

    /// <summary>The RFC 3463 class.subject.detail code from the first line, e.g. "5.1.1", or null.</summary>
    public string? EnhancedCode { get; }

    /// <summary>The text of each line, without the code, separator and enhanced code; possibly empty strings.</summary>
    public IReadOnlyList<string> Lines { get; }

    /// <summary>The text of every line joined by a space.</summary>
    public string Text => Lines.Count == 1 ? Lines[0] : string.Join(' ', Lines);

    /// <summary>2yz: the command succeeded.</summary>
    public bool IsSuccess => Code is >= 200 and < 300;

    /// <summary>3yz: positive intermediate (354 after DATA).</summary>
    public bool IsIntermediate => Code is >= 300 and < 400;

    /// <summary>4yz: transient negative completion; the same request may succeed later.</summary>
    public bool IsTransient => Code is >= 400 and < 500;

    /// <summary>5yz: permanent negative completion.</summary>
    public bool IsPermanent => Code >= 500;

    /// <summary>
    /// The enhanced code to report: the server's own when present, else the RFC 3463 §3.1 generic "X.0.0" for the
    /// reply's class.
    /// </summary>
    public string EnhancedCodeOrDefault => EnhancedCode ?? (Code / 100) switch
    {
        2 => "2.0.0",
        4 => "4.0.0",
        5 => "5.0.0",
        _ => "2.0.0",
    };

    public override string ToString() =>
        EnhancedCode is null ? $"{Code} {Text}" : $"{Code} {EnhancedCode} {Text}";
}
