using System.Text;

namespace MailMesh.Smtp.Tests;

/// <summary>The AUTH SASL exchange (RFC 4954 §4, PLAIN RFC 4616, LOGIN) without a socket.</summary>
public sealed class SmtpAuthExchangeTests
{
    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static SmtpAuthStep Respond(SmtpAuthExchange exchange, string line) => exchange.Respond(Encoding.ASCII.GetBytes(line));

    [Fact]
    public void PLAIN_with_initial_response_yields_the_credentials_at_once()
    {
        var step = SmtpAuthExchange.Start("PLAIN " + B64("\0alice\0secret"), out var exchange);
        Assert.Equal(SmtpAuthStepKind.Credentials, step.Kind);
        Assert.Equal("alice", step.User);
        Assert.Equal("secret", step.Password);
        Assert.False(step.ImpersonationRequested);
        Assert.True(exchange!.IsComplete);
        Assert.Equal("PLAIN", exchange.Mechanism);
    }

    [Fact]
    public void PLAIN_without_initial_response_sends_an_empty_334()
    {
        var step = SmtpAuthExchange.Start("plain", out var exchange);
        Assert.Equal(SmtpAuthStepKind.Challenge, step.Kind);
        Assert.Equal("334 ", step.Reply!.ToString().TrimEnd('\r', '\n'));
        var credentials = Respond(exchange!, B64("alice\0alice\0pw"));
        Assert.Equal(SmtpAuthStepKind.Credentials, credentials.Kind);
        Assert.Equal("alice", credentials.User);
        Assert.Equal("pw", credentials.Password);
    }

    [Fact]
    public void PLAIN_with_another_authorization_identity_drops_the_password()
    {
        var step = SmtpAuthExchange.Start("PLAIN " + B64("bob\0alice\0secret"), out _);
        Assert.Equal(SmtpAuthStepKind.Credentials, step.Kind);
        Assert.True(step.ImpersonationRequested);
        Assert.Equal(string.Empty, step.Password);
    }

    [Fact]
    public void LOGIN_asks_for_username_then_password()
    {
        var first = SmtpAuthExchange.Start("LOGIN", out var exchange);
        Assert.Equal(334, first.Reply!.Code);
        Assert.Contains("VXNlcm5hbWU6", first.Reply.ToString(), StringComparison.Ordinal);
        var second = Respond(exchange!, B64("alice"));
        Assert.Equal(SmtpAuthStepKind.Challenge, second.Kind);
        Assert.Contains("UGFzc3dvcmQ6", second.Reply!.ToString(), StringComparison.Ordinal);
        Assert.False(exchange!.IsComplete);
        var third = Respond(exchange, B64("pässword"));
        Assert.Equal(SmtpAuthStepKind.Credentials, third.Kind);
        Assert.Equal("alice", third.User);
        Assert.Equal("pässword", third.Password);
        Assert.True(exchange.IsComplete);
        Assert.Throws<InvalidOperationException>(() => Respond(exchange, B64("more")));
    }

    [Fact]
    public void LOGIN_with_initial_response_skips_the_username_challenge()
    {
        var step = SmtpAuthExchange.Start("LOGIN " + B64("alice"), out var exchange);
        Assert.Equal(SmtpAuthStepKind.Challenge, step.Kind);
        Assert.Contains("UGFzc3dvcmQ6", step.Reply!.ToString(), StringComparison.Ordinal);
        Assert.Equal("alice", Respond(exchange!, B64("pw")).User);
    }

    [Fact]
    public void Star_cancels_with_501()
    {
        SmtpAuthExchange.Start("LOGIN", out var exchange);
        var step = Respond(exchange!, "*");
        Assert.Equal(SmtpAuthStepKind.Failed, step.Kind);
        Assert.Same(SmtpReplies.AuthenticationCancelled, step.Reply);
        Assert.True(exchange!.IsComplete);
    }

    [Fact]
    public void Equals_sign_is_an_empty_response()
    {
        var step = SmtpAuthExchange.Start("PLAIN =", out _);
        Assert.Equal(SmtpAuthStepKind.Failed, step.Kind);
        Assert.Same(SmtpReplies.AuthenticationBadBase64, step.Reply);

        SmtpAuthExchange.Start("LOGIN", out var login);
        Assert.Equal(SmtpAuthStepKind.Challenge, Respond(login!, "=").Kind);
        var credentials = Respond(login!, "=");
        Assert.Equal((string.Empty, string.Empty), (credentials.User, credentials.Password));
    }

    [Theory]
    [InlineData("not base64!")]
    [InlineData("YWJj=")]
    [InlineData("YQ")]
    public void Bad_base64_is_501(string response)
    {
        SmtpAuthExchange.Start("PLAIN", out var exchange);
        var step = Respond(exchange!, response);
        Assert.Equal(SmtpAuthStepKind.Failed, step.Kind);
        Assert.Same(SmtpReplies.AuthenticationBadBase64, step.Reply);
    }

    [Fact]
    public void PLAIN_without_two_NULs_is_501() =>
        Assert.Same(SmtpReplies.AuthenticationBadBase64, SmtpAuthExchange.Start("PLAIN " + B64("alice\0secret"), out _).Reply);

    [Theory]
    [InlineData("", 501)]
    [InlineData("PLAIN a b", 501)]
    [InlineData("CRAM-MD5", 504)]
    [InlineData("XOAUTH2 abc", 504)]
    public void Syntax_and_unknown_mechanisms_start_no_exchange(string argument, int code)
    {
        var step = SmtpAuthExchange.Start(argument, out var exchange);
        Assert.Null(exchange);
        Assert.Equal(SmtpAuthStepKind.Failed, step.Kind);
        Assert.Equal(code, step.Reply!.Code);
    }

    [Fact]
    public void Response_split_across_segments_decodes_the_same()
    {
        SmtpAuthExchange.Start("PLAIN", out var exchange);
        var text = B64("\0alice\0secret");
        var sequence = Feeder.Segments(Feeder.Ascii(text[..5]), Feeder.Ascii(text[5..]));
        Assert.Equal("secret", exchange!.Respond(sequence).Password);
    }
}
