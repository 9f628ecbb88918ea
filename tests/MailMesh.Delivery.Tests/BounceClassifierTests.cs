using System.Text;
using System.Text.RegularExpressions;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults.Bounces;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// The shipped rules (bounce-rules.json) on real-world replies of the large mailbox providers and common MTAs, the
/// order of evaluation, and operator files.
/// </summary>
public sealed class BounceClassifierTests
{
    private static readonly BounceClassifier Shipped = BounceClassifier.Of([BounceRuleFile.Shipped]);

    [Theory]
    // Gmail
    [InlineData(550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser", BounceClass.InvalidRecipient)]
    [InlineData(452, "4.2.2", "The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp", BounceClass.QuotaIssues)]
    [InlineData(552, "5.2.2", "The email account that you tried to reach is over quota and inactive.", BounceClass.QuotaIssues)]
    [InlineData(421, "4.7.0", "[203.0.113.9] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", BounceClass.Throttled)]
    [InlineData(421, "4.7.28", "[203.0.113.9] Our system has detected an unusual rate of unsolicited mail originating from your IP address.", BounceClass.Throttled)]
    [InlineData(450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.", BounceClass.Throttled)]
    [InlineData(550, "5.7.1", "Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.", BounceClass.SpamContent)]
    [InlineData(550, "5.7.1", "Our system has detected that this message is likely suspicious due to the very low reputation of the sending domain.", BounceClass.SpamBlock)]
    [InlineData(550, "5.7.26", "This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.", BounceClass.AuthenticationFailed)]
    [InlineData(550, "5.7.25", "The IP address sending this message does not have a PTR record setup.", BounceClass.BadConfiguration)]
    [InlineData(552, "5.2.3", "Your message exceeded Google's message size limits.", BounceClass.TooLarge)]
    [InlineData(552, "5.7.0", "This message was blocked because its content presents a potential security issue.", BounceClass.VirusRelated)]
    // Microsoft / Outlook
    [InlineData(550, "5.5.0", "Requested action not taken: mailbox unavailable (S2017062302). [BN8NAM12FT052.eop-nam12.prod.protection.outlook.com]", BounceClass.InvalidRecipient)]
    [InlineData(550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281) [DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]", BounceClass.InvalidRecipient)]
    [InlineData(550, "5.7.1", "Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", BounceClass.SpamBlock)]
    [InlineData(550, "5.7.606", "Access denied, banned sending IP [203.0.113.9]. To request removal from this list please visit https://sender.office.com/", BounceClass.SpamBlock)]
    [InlineData(451, "4.7.650", "The mail server [203.0.113.9] has been temporarily rate limited due to IP reputation.", BounceClass.Throttled)]
    [InlineData(550, "5.7.509", "Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy of reject.", BounceClass.AuthenticationFailed)]
    [InlineData(550, "5.7.54", "SMTP; Unable to relay recipient in non-accepted domain", BounceClass.RelayDenied)]
    [InlineData(552, "5.2.2", "Mailbox size limit exceeded", BounceClass.QuotaIssues)]
    // Yahoo / AOL
    [InlineData(554, "5.0.0", "delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - mta1234.mail.bf1.yahoo.com", BounceClass.InvalidRecipient)]
    [InlineData(554, "5.0.0", "delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. This mailbox is disabled (554.30).", BounceClass.InactiveMailbox)]
    [InlineData(421, "4.7.0", "[TSS04] Messages from 203.0.113.9 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", BounceClass.Throttled)]
    [InlineData(553, "5.7.1", "[BL21] Connections will not be accepted from 203.0.113.9, because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes", BounceClass.SpamBlock)]
    [InlineData(550, "5.7.9", "This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM.", BounceClass.AuthenticationFailed)]
    [InlineData(554, "5.7.9", "Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes", BounceClass.PolicyRelated)]
    // Apple iCloud
    [InlineData(550, "5.1.1", "<someone@icloud.com>: user does not exist", BounceClass.InvalidRecipient)]
    [InlineData(554, "5.7.1", "[CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137", BounceClass.PolicyRelated)]
    [InlineData(550, "5.7.0", "Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=203.0.113.9", BounceClass.SpamBlock)]
    [InlineData(552, "5.2.2", "<someone@icloud.com>: user is over quota", BounceClass.QuotaIssues)]
    // Comcast
    [InlineData(550, "5.1.1", "<someone@comcast.net> Not our Customer", BounceClass.InvalidRecipient)]
    [InlineData(554, "5.7.1", "resimta-ch2-18v.sys.comcast.net resimta-ch2-18v.sys.comcast.net 203.0.113.9 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001", BounceClass.SpamBlock)]
    [InlineData(421, "4.2.0", "Throttled - try again later. Please see https://postmaster.comcast.net/smtp-error-codes.php#RL000001", BounceClass.Throttled)]
    // GMX / Web.de
    [InlineData(550, null, "Requested action not taken: mailbox unavailable", BounceClass.InvalidRecipient)]
    [InlineData(554, null, "gmx.net (mxgmx017) Nemesis ESMTP Service not available No SMTP service IP address is black listed.", BounceClass.SpamBlock)]
    [InlineData(552, null, "Requested mail action aborted: exceeded storage allocation / quota exceeded", BounceClass.QuotaIssues)]
    [InlineData(421, null, "mxweb112 Too many connections from your IP", BounceClass.Throttled)]
    // Orange
    [InlineData(550, "5.1.1", "Adresse d au moins un destinataire invalide. Invalid recipient. OFR_416 [416]", BounceClass.InvalidRecipient)]
    [InlineData(421, null, "mwinf5c10 ME Trop de connexions, veuillez verifier votre configuration. Too many connections, slow down. OFR005_104 [104]", BounceClass.Throttled)]
    [InlineData(550, "5.7.1", "Service refuse. Veuillez essayer plus tard. Service refused, please try later. OFR_506 [506]", BounceClass.SpamBlock)]
    // Mimecast
    [InlineData(550, null, "Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550", BounceClass.InvalidRecipient)]
    [InlineData(554, null, "Email rejected due to security policies - https://community.mimecast.com/docs/DOC-1369#554", BounceClass.PolicyRelated)]
    [InlineData(550, null, "Rejected by header based Anti-Spoofing policy: someone@example.com", BounceClass.AuthenticationFailed)]
    [InlineData(451, null, "Rate limited - https://community.mimecast.com/docs/DOC-1369#451", BounceClass.Throttled)]
    // Proofpoint
    [InlineData(554, null, "Blocked - see https://ipcheck.proofpoint.com/?ip=203.0.113.9", BounceClass.SpamBlock)]
    [InlineData(550, "5.1.1", "User Unknown", BounceClass.InvalidRecipient)]
    // Barracuda
    [InlineData(554, null, "Service unavailable; Client host [203.0.113.9] blocked using Barracuda Reputation; http://www.barracudanetworks.com/reputation/?pr=1&ip=203.0.113.9", BounceClass.SpamBlock)]
    [InlineData(550, null, "No such user (someone@example.com)", BounceClass.InvalidRecipient)]
    [InlineData(554, null, "Message contains a virus (Barracuda)", BounceClass.VirusRelated)]
    // Postfix / Exim / generic
    [InlineData(550, "5.1.1", "<someone@example.com>: Recipient address rejected: User unknown in virtual mailbox table", BounceClass.InvalidRecipient)]
    [InlineData(450, "4.1.1", "<someone@example.com>: Recipient address rejected: User unknown in local recipient table", BounceClass.InvalidRecipient)]
    [InlineData(450, "4.2.0", "<someone@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html", BounceClass.TransientFailure)]
    [InlineData(454, "4.7.1", "<someone@example.com>: Relay access denied", BounceClass.RelayDenied)]
    [InlineData(450, "4.2.1", "Mailbox busy, try later", BounceClass.TransientFailure)]
    [InlineData(554, "5.7.1", "Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org", BounceClass.SpamBlock)]
    [InlineData(552, "5.3.4", "Message size exceeds fixed limit", BounceClass.TooLarge)]
    [InlineData(550, "5.7.1", "Something we do not recognise", BounceClass.PolicyRelated)]
    [InlineData(554, "5.0.0", "Something we do not recognise", BounceClass.Uncategorized)]
    [InlineData(451, "4.0.0", "Something we do not recognise", BounceClass.TransientFailure)]
    public void Classifies_real_world_replies(int code, string? enhanced, string text, BounceClass expected)
    {
        Assert.Equal(expected, Shipped.Classify(code, enhanced, text, transient: code < 500));
    }

    [Theory]
    // The results MailMesh makes up itself (SmtpDeliveryAgent, DeliverMessageConsumer).
    [InlineData(550, "5.1.2", "Domain missing.test does not exist", false, BounceClass.BadDomain)]
    [InlineData(556, "5.1.10", "Recipient address has null MX: nomail.test accepts no mail", false, BounceClass.BadDomain)]
    [InlineData(451, "4.4.3", "MX lookup of dest.test timed out", true, BounceClass.DnsFailure)]
    [InlineData(451, "4.4.1", "mx.dest.test[192.0.2.1]: Connection refused", true, BounceClass.NoAnswerFromHost)]
    [InlineData(451, "4.4.2", "mx.dest.test[192.0.2.1]: connection closed", true, BounceClass.BadConnection)]
    [InlineData(451, "4.7.5", "mx.dest.test[192.0.2.1]: TLS handshake failed", true, BounceClass.TlsFailure)]
    [InlineData(550, "5.7.30", "REQUIRETLS support required: mx[192.0.2.1]: no STARTTLS", false, BounceClass.TlsFailure)]
    [InlineData(451, "4.3.1", "Too many large messages are being delivered at once; trying again later", true, BounceClass.TransientFailure)]
    [InlineData(553, "5.6.7", "SMTPUTF8 is required for the non-ASCII recipient address, but was not offered by the server", false, BounceClass.ProtocolErrors)]
    [InlineData(452, "4.5.3", "Too many recipients", true, BounceClass.TooManyRecipients)]
    // A refused greeting comes back as a local deferral whose text carries the server's reply.
    [InlineData(451, "4.4.0", "mx.dest.test[192.0.2.1]: 554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org", true, BounceClass.SpamBlock)]
    public void Classifies_local_failures(int code, string enhanced, string text, bool transient, BounceClass expected)
    {
        Assert.Equal(expected, Shipped.Classify(code, enhanced, text, transient));
    }

    [Fact]
    public void A_delivery_stays_unclassified_and_other_results_carry_their_class()
    {
        var delivered = Result(DeliveryOutcome.Delivered, 250, "2.0.0", "OK");
        var refused = Result(DeliveryOutcome.Bounced, 550, "5.1.1", "No such user");

        Assert.Null(Shipped.Classify(delivered).Class);
        Assert.Equal(BounceClass.InvalidRecipient, Shipped.Classify(refused).Class);
    }

    [Fact]
    public void An_exact_code_wins_over_the_text_and_the_text_over_a_wildcard_code()
    {
        // 5.1.1 is the server's own verdict, whatever the words; 5.7.1 says only "policy", the words say spam block.
        Assert.Equal(BounceClass.InvalidRecipient, Shipped.Classify(550, "5.1.1", "blocked using zen.spamhaus.org", transient: false));
        Assert.Equal(BounceClass.SpamBlock, Shipped.Classify(550, "5.7.1", "blocked using zen.spamhaus.org", transient: false));
        Assert.Equal(BounceClass.PolicyRelated, Shipped.Classify(550, "5.7.1", "go away", transient: false));
    }

    [Fact]
    public void Operator_rules_come_before_the_shipped_ones()
    {
        var operatorFile = Load("""
            {
              // Comments and trailing commas are allowed.
              "codes": { "5.1.1": "PolicyRelated", "X.7.*": "SpamBlock", },
              "patterns": [ { "class": "QuotaIssues", "patterns": [ "acme storage says no" ] } ]
            }
            """);
        var classifier = BounceClassifier.Of([operatorFile, BounceRuleFile.Shipped]);

        Assert.Equal(BounceClass.PolicyRelated, classifier.Classify(550, "5.1.1", "User unknown", transient: false));
        Assert.Equal(BounceClass.QuotaIssues, classifier.Classify(550, "5.0.0", "ACME storage says no (user unknown)", transient: false));
        Assert.Equal(BounceClass.SpamBlock, classifier.Classify(550, "5.7.1", "go away", transient: false));

        // Untouched shipped rules still apply.
        Assert.Equal(BounceClass.QuotaIssues, classifier.Classify(552, "5.2.2", "Mailbox full", transient: false));
    }

    [Theory]
    [InlineData("""{ "codes": { "5.1": "InvalidRecipient" } }""", "'5.1' is not an enhanced status code")]
    [InlineData("""{ "codes": { "5.1.1": "NoSuchClass" } }""", "'NoSuchClass' is not a bounce class")]
    [InlineData("""{ "patterns": [ { "class": "SpamBlock", "patterns": [ "(unclosed" ] } ] }""", "patterns[0]: '(unclosed' is not a usable regular expression")]
    [InlineData("""{ "patterns": [ { "class": "SpamBlock", "patterns": [ "(a)\\1" ] } ] }""", "patterns[0]")]
    [InlineData("""{ "patterns": [ { "class": "SpamBlock" } ] }""", "patterns[0]: lists no patterns")]
    [InlineData("""{ "patterns": [ { "class": "SpamBlock", "patterns": [ "(?x)blocked # a comment", "listed" ] } ] }""", "patterns[0]: the patterns are usable alone but not together")]
    [InlineData("""not json""", "not a bounce rules file")]
    public void A_bad_file_is_refused_naming_what_is_wrong(string json, string expected)
    {
        var ex = Assert.Throws<InvalidDataException>(() => Load(json));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_loaded_file_builds_each_group_once_as_one_linear_time_regex_and_the_classifier_builds_none()
    {
        var file = Load("""
            { "patterns": [
                { "class": "SpamBlock", "patterns": [ "blocked by (spamhaus|spamcop)", "listed at [a-z.]+" ] },
                { "class": "QuotaIssues", "patterns": [ "mailbox (is )?full", "over quota" ] } ] }
            """);
        Assert.All(file.Patterns!, g => Assert.True(g.Compiled!.Options.HasFlag(RegexOptions.NonBacktracking)));

        // Building a linear-time regex allocates megabytes; reusing the loaded ones, the classifier allocates almost
        // nothing (it built every group again, and loading built every pattern alone as well: issue 8).
        var before = GC.GetAllocatedBytesForCurrentThread();
        var classifier = BounceClassifier.Of([file]);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.InRange(allocated, 0, 64 * 1024);
        Assert.Equal(BounceClass.SpamBlock, classifier.Classify(554, null, "LISTED AT zen.example", transient: false));
        Assert.Equal(BounceClass.QuotaIssues, classifier.Classify(552, null, "Mailbox full", transient: false));

        // Patterns changed after loading are not run as the regex built from the old ones.
        file.Patterns![1].Patterns = ["inbox (is )?full"];
        var changed = BounceClassifier.Of([file]);
        Assert.Equal(BounceClass.QuotaIssues, changed.Classify(552, null, "Inbox full", transient: false));
        Assert.Equal(BounceClass.Uncategorized, changed.Classify(552, null, "Mailbox over quota", transient: false));
    }

    [Fact]
    public void A_bad_or_missing_operator_file_fails_validation_naming_the_key()
    {
        var bad = Path.Combine(Path.GetTempPath(), $"bounce-rules-{Guid.NewGuid():N}.json");
        File.WriteAllText(bad, """{ "codes": { "5.1.1": "Nope" } }""");
        try
        {
            var options = new BounceRulesOptions { Files = [bad, bad + ".missing"] };

            var errors = options.Validate().ToList();

            Assert.Contains(errors, e => e.StartsWith("Delivery:BounceRules:Files:0: ", StringComparison.Ordinal) && e.Contains("'Nope' is not a bounce class", StringComparison.Ordinal));
            Assert.Contains(errors, e => e.StartsWith("Delivery:BounceRules:Files:1: ", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(bad);
        }
    }

    [Fact]
    public void Without_the_shipped_rules_only_the_operator_file_and_the_outcome_classify()
    {
        var path = Path.Combine(Path.GetTempPath(), $"bounce-rules-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{ "patterns": [ { "class": "SpamBlock", "patterns": [ "nope" ] } ] }""");
        try
        {
            var classifier = BounceClassifier.Of(BounceClassifier.Files(new BounceRulesOptions { Files = [path], IncludeShippedRules = false }).ToList());

            Assert.Equal(BounceClass.SpamBlock, classifier.Classify(550, "5.1.1", "nope", transient: false));
            Assert.Equal(BounceClass.Uncategorized, classifier.Classify(550, "5.1.1", "User unknown", transient: false));
            Assert.Equal(BounceClass.TransientFailure, classifier.Classify(450, "4.1.1", "User unknown", transient: true));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static BounceRuleFile Load(string json) => BounceRuleFile.Load(new MemoryStream(Encoding.UTF8.GetBytes(json)));

    private static RecipientResult Result(DeliveryOutcome outcome, int code, string enhanced, string text) => new()
    {
        RecipientId = 1,
        Address = "a@dest.test",
        Outcome = outcome,
        ReplyCode = code,
        EnhancedCode = enhanced,
        ReplyText = text,
        Stage = ReplyStage.Rcpt,
    };
}
