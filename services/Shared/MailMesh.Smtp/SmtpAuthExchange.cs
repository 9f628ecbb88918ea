using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace MailMesh.Smtp;

/// <summary>What one step of an AUTH exchange asks the server to do next.</summary>
public enum SmtpAuthStepKind
{
    /// <summary>Send <see cref="SmtpAuthStep.Reply"/> (a 334 challenge) and read the client's next line as a response.</summary>
    Challenge,

    /// <summary>The exchange is complete: verify <see cref="SmtpAuthStep.User"/> and <see cref="SmtpAuthStep.Password"/>.</summary>
    Credentials,

    /// <summary>The exchange ended without credentials: send <see cref="SmtpAuthStep.Reply"/> (cancelled, bad base64, syntax...).</summary>
    Failed,
}

/// <summary>The result of starting or continuing an <see cref="SmtpAuthExchange"/>.</summary>
public sealed record SmtpAuthStep
{
    public required SmtpAuthStepKind Kind { get; init; }

    /// <summary>The reply to send for <see cref="SmtpAuthStepKind.Challenge"/> and <see cref="SmtpAuthStepKind.Failed"/>.</summary>
    public SmtpReply? Reply { get; init; }

    /// <summary>The authentication identity (authcid), for <see cref="SmtpAuthStepKind.Credentials"/>.</summary>
    public string User { get; init; } = string.Empty;

    /// <summary>The password, for <see cref="SmtpAuthStepKind.Credentials"/>.</summary>
    public string Password { get; init; } = string.Empty;

    /// <summary>
    /// True when the client asked to act as another identity (a PLAIN authzid different from the authcid). RFC 4616 §2
    /// lets the server refuse; the caller treats it as invalid credentials.
    /// </summary>
    public bool ImpersonationRequested { get; init; }

    internal static SmtpAuthStep Fail(SmtpReply reply) => new() { Kind = SmtpAuthStepKind.Failed, Reply = reply };

    internal static SmtpAuthStep Challenge(string base64) => new() { Kind = SmtpAuthStepKind.Challenge, Reply = new SmtpReply(334, null, base64) };
}

/// <summary>
/// The server side of one SMTP AUTH exchange (RFC 4954 §4) for the SASL mechanisms PLAIN (RFC 4616) and LOGIN
/// (draft-murchison-sasl-login): parses the AUTH argument, issues the 334 challenges, decodes the base64 responses and
/// yields the credentials. It knows no sockets and no accounts: the session writes the replies, reads the response
/// lines and verifies the credentials.
/// </summary>
public sealed class SmtpAuthExchange
{
    private const string UsernameChallenge = "VXNlcm5hbWU6"; // "Username:"
    private const string PasswordChallenge = "UGFzc3dvcmQ6"; // "Password:"

    private string? _user;

    private SmtpAuthExchange(string mechanism) => Mechanism = mechanism;

    /// <summary>The mechanisms offered in the EHLO reply (RFC 4954 §3).</summary>
    public static string Mechanisms => "PLAIN LOGIN";

    /// <summary>"PLAIN" or "LOGIN".</summary>
    public string Mechanism { get; }

    /// <summary>True once the exchange has produced credentials or failed: no more responses are expected.</summary>
    public bool IsComplete { get; private set; }

    /// <summary>
    /// RFC 4954 §4: "AUTH mechanism [initial-response]". Returns the first step, and the exchange when one was started
    /// (null for a syntax error or an unknown mechanism, whose reply is in the step).
    /// </summary>
    public static SmtpAuthStep Start(string argument, out SmtpAuthExchange? exchange)
    {
        ArgumentNullException.ThrowIfNull(argument);
        exchange = null;
        var parts = argument.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 0 or > 2)
        {
            return SmtpAuthStep.Fail(SmtpReplies.SyntaxParameters);
        }

        var mechanism = parts[0].ToUpperInvariant();
        if (mechanism is not ("PLAIN" or "LOGIN"))
        {
            return SmtpAuthStep.Fail(SmtpReplies.UnrecognizedAuthenticationType);
        }

        exchange = new SmtpAuthExchange(mechanism);
        if (parts.Length == 1)
        {
            // PLAIN: an empty challenge (RFC 4616 §2); LOGIN: "Username:".
            return SmtpAuthStep.Challenge(mechanism == "PLAIN" ? string.Empty : UsernameChallenge);
        }

        // RFC 4954 §4: the initial response; "=" is an empty one.
        return exchange.Respond(Encoding.ASCII.GetBytes(parts[1]));
    }

    /// <summary>One response line from the client (without CRLF).</summary>
    public SmtpAuthStep Respond(ReadOnlySequence<byte> line) =>
        line.IsSingleSegment ? Respond(line.FirstSpan) : Respond(line.ToArray());

    /// <inheritdoc cref="Respond(ReadOnlySequence{byte})"/>
    public SmtpAuthStep Respond(ReadOnlySpan<byte> line)
    {
        if (IsComplete)
        {
            throw new InvalidOperationException("The AUTH exchange is complete.");
        }

        // RFC 4954 §4: "*" cancels the exchange (501).
        if (line is [(byte)'*'])
        {
            return Complete(SmtpAuthStep.Fail(SmtpReplies.AuthenticationCancelled));
        }

        byte[] decoded;
        if (line is [(byte)'='])
        {
            decoded = [];
        }
        else
        {
            decoded = new byte[Base64.GetMaxDecodedFromUtf8Length(line.Length)];
            if (Base64.DecodeFromUtf8(line, decoded, out _, out var written) != OperationStatus.Done)
            {
                return Complete(SmtpAuthStep.Fail(SmtpReplies.AuthenticationBadBase64));
            }

            decoded = decoded[..written];
        }

        if (Mechanism == "LOGIN")
        {
            if (_user is null)
            {
                _user = Encoding.UTF8.GetString(decoded);
                return SmtpAuthStep.Challenge(PasswordChallenge);
            }

            return Complete(new SmtpAuthStep { Kind = SmtpAuthStepKind.Credentials, User = _user, Password = Encoding.UTF8.GetString(decoded) });
        }

        // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd.
        var first = Array.IndexOf(decoded, (byte)0);
        var second = first < 0 ? -1 : Array.IndexOf(decoded, (byte)0, first + 1);
        if (second < 0)
        {
            return Complete(SmtpAuthStep.Fail(SmtpReplies.AuthenticationBadBase64));
        }

        var authorization = Encoding.UTF8.GetString(decoded, 0, first);
        var user = Encoding.UTF8.GetString(decoded, first + 1, second - first - 1);
        var password = Encoding.UTF8.GetString(decoded, second + 1, decoded.Length - second - 1);
        var impersonation = authorization.Length > 0 && !string.Equals(authorization, user, StringComparison.Ordinal);
        return Complete(new SmtpAuthStep
        {
            Kind = SmtpAuthStepKind.Credentials,
            User = user,

            // Acting as another identity is not supported (RFC 4616 §2 lets the server refuse): the password is
            // dropped so verification fails the same way, with the same delay, as a wrong password.
            Password = impersonation ? string.Empty : password,
            ImpersonationRequested = impersonation,
        });
    }

    private SmtpAuthStep Complete(SmtpAuthStep step)
    {
        IsComplete = true;
        return step;
    }
}
