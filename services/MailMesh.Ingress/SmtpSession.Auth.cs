using System.Buffers;
using MailMesh.Ingress.Auth;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Smtp;

namespace MailMesh.Ingress;

/// <summary>
/// AUTH (RFC 4954): the SASL exchange is <see cref="SmtpAuthExchange"/> (MailMesh.Smtp); the session writes its
/// challenges, reads the responses in <see cref="ReadModeKind.AuthResponse"/> mode and verifies the credentials with
/// the <see cref="Authenticator"/>, which throttles and locks out guessing.
/// </summary>
internal sealed partial class SmtpSession
{
    /// <summary>RFC 4954 §4: AUTH mechanism [initial-response].</summary>
    private async Task<bool> AuthAsync(SmtpCommand command)
    {
        if (_authenticatedUser is not null)
        {
            return ProtocolError(SmtpReplies.AlreadyAuthenticated);
        }

        if (!AuthOffered)
        {
            // RFC 4954 §4 / §6: AUTH over a clear channel when only TLS may carry it.
            return ProtocolError(SmtpReplies.EncryptionRequired);
        }

        if (_services.Authenticator.IsLockedOut(_clientAddress))
        {
            Log.AuthLockedOut(_logger, _clientAddress);
            return ProtocolError(SmtpReplies.AuthenticationTemporaryFailure);
        }

        var step = SmtpAuthExchange.Start(command.Argument, out var exchange);
        _auth = exchange;
        return await AuthStepAsync(step);
    }

    /// <summary>One line read in <see cref="ReadModeKind.AuthResponse"/> mode.</summary>
    private async Task<bool> AuthResponseAsync(ReadOnlySequence<byte> line, SmtpReply? lineError)
    {
        if (lineError is not null)
        {
            // A response line too long or with a bare line ending ends the exchange.
            _auth = null;
            _mode = ReadMode.Command;
            return ProtocolError(lineError);
        }

        return await AuthStepAsync(_auth!.Respond(line));
    }

    private async Task<bool> AuthStepAsync(SmtpAuthStep step)
    {
        switch (step.Kind)
        {
            case SmtpAuthStepKind.Challenge:
                // RFC 4954 §4: the client's next line is a response, not a command.
                _mode = ReadMode.AuthResponse;
                Write(step.Reply!);
                return false;
            case SmtpAuthStepKind.Failed:
                _auth = null;
                _mode = ReadMode.Command;
                return ProtocolError(step.Reply!);
        }

        // The exchange is over: whatever the verification answers, the next line is a command.
        var mechanism = _auth!.Mechanism;
        _auth = null;
        _mode = ReadMode.Command;
        var outcome = await _services.Authenticator.VerifyAsync(_clientAddress, step.User, step.Password, _graceEnded);
        switch (outcome)
        {
            case AuthOutcome.Succeeded:
                _authenticatedUser = step.User;
                _sessionActivity?.SetTag("enduser.id", step.User);
                Log.AuthSucceeded(_logger, mechanism, step.User, _clientAddress);
                _metrics.Authentication("success");
                Write(SmtpReplies.AuthenticationSucceeded);
                return false;
            case AuthOutcome.LockedOut:
                Log.AuthLockedOut(_logger, _clientAddress);
                _metrics.Authentication("locked_out");
                return ProtocolError(SmtpReplies.AuthenticationTemporaryFailure);
            default:
                Log.AuthFailed(_logger, mechanism, step.User, _clientAddress);
                _metrics.Authentication("failure");
                return ProtocolError(SmtpReplies.AuthenticationFailed);
        }
    }
}
