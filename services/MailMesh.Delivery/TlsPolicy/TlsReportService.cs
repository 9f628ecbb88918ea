using System.Globalization;
using System.Net.Http.Headers;
using MailMesh.Storage;
using Microsoft.Extensions.Options;
using MimeKit;

namespace MailMesh.Delivery;

/// <summary>
/// SMTP TLS reporting (RFC 8460) in the background of every Delivery replica: adds the in-memory counts to the shared
/// aggregate every <see cref="TlsReportingOptions.FlushInterval"/>, and once a UTC day is over (after
/// <see cref="TlsReportingOptions.SendAfter"/>) sends each policy domain's report of that day to the <c>rua</c> its
/// <c>_smtp._tls</c> TXT record names: by mail (queued in the spool like any message, so it is DKIM-signed and retried)
/// and by HTTPS POST. One replica sends each report: the one whose claim in the store succeeds.
/// </summary>
internal sealed class TlsReportService(
    TlsReportRecorder recorder,
    ITlsReportStore store,
    ISpool spool,
    TlsPolicyDns dns,
    IOptions<DeliveryOptions> options,
    TimeProvider time,
    ILogger<TlsReportService> logger) : BackgroundService
{
    private readonly TlsReportingOptions _options = options.Value.Tls.Reporting;
    private readonly HttpClient _http = new(MtaStsResolver.CreateHandler(options.Value.Tls.MtaSts, useTestEndpoint: false))
    {
        Timeout = options.Value.Tls.MtaSts.FetchTimeout,
    };

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }

        using var timer = new PeriodicTimer(_options.FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await RunOnceAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: the last counts are flushed below.
        }

        await FlushAsync(CancellationToken.None);
    }

    /// <summary>One round: flush the counts, then send the reports that are due.</summary>
    public async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken);
        var now = time.GetUtcNow();
        if (_options.SendReports && now.TimeOfDay >= _options.SendAfter)
        {
            await SendDayAsync(DateOnly.FromDateTime(now.UtcDateTime).AddDays(-1), cancellationToken);
        }
    }

    /// <summary>Adds what was counted since the last flush to the shared aggregate (put back for the next one on failure).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var pending = recorder.TakePending();
        if (pending.Count == 0)
        {
            return;
        }

        var counts = new List<TlsReportCount>();
        foreach (var increment in pending)
        {
            var key = increment.Key;
            if (increment.Successes > 0)
            {
                counts.Add(Count(key, string.Empty, null, null, null, increment.Successes));
            }

            foreach (var (failure, count) in increment.Failures)
            {
                counts.Add(Count(key, failure.ResultType, failure.ReceivingMxHostname, failure.ReceivingIp, failure.AdditionalInformation, count));
            }
        }

        try
        {
            await store.AddAsync(counts, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            recorder.Restore(pending);
            TlsReportLog.FlushFailed(logger, ex);
        }
    }

    private static TlsReportCount Count(TlsReportKey key, string resultType, string? mxHost, string? ip, string? detail, long count) => new()
    {
        Day = key.Day,
        PolicyDomain = key.PolicyDomain,
        PolicyType = key.PolicyType,
        PolicyStrings = key.PolicyStrings,
        ResultType = resultType,
        MxHost = mxHost ?? string.Empty,
        ReceivingIp = ip ?? string.Empty,
        Detail = detail ?? string.Empty,
        Count = count,
    };

    /// <summary>Sends every unsent report of <paramref name="day"/>; returns how many were sent to at least one rua.</summary>
    public async Task<int> SendDayAsync(DateOnly day, CancellationToken cancellationToken)
    {
        var sent = 0;
        foreach (var domain in await store.UnsentDomainsAsync(day, cancellationToken))
        {
            var reportId = $"{day:yyyyMMdd}.{domain}.{Guid.NewGuid():N}@{SubmitterDomain}";
            if (!await store.ClaimAsync(day, domain, reportId, time.GetUtcNow(), cancellationToken))
            {
                continue;
            }

            try
            {
                var (status, texts) = await dns.TxtAsync("_smtp._tls." + domain, cancellationToken);
                var rua = status == PolicyDnsStatus.Answer ? TlsReport.ParseRua(texts) : [];
                if (status == PolicyDnsStatus.Failed)
                {
                    await store.ReleaseAsync(day, domain, cancellationToken);
                    continue;
                }

                if (rua.Count == 0)
                {
                    // No TLSRPT record: nobody asked for the report; the claim stays so it is not looked up again.
                    continue;
                }

                var counts = await store.ReadAsync(day, domain, cancellationToken);
                var json = TlsReport.Build(_options.OrganizationName, _options.ContactInfo, reportId, day, domain, counts);
                var gzip = TlsReport.Gzip(json);
                var delivered = 0;
                foreach (var uri in rua)
                {
                    try
                    {
                        if (uri.Scheme == Uri.UriSchemeMailto)
                        {
                            await MailAsync(uri, day, domain, reportId, gzip, cancellationToken);
                        }
                        else
                        {
                            await PostAsync(uri, gzip, cancellationToken);
                        }

                        delivered++;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException or InvalidOperationException)
                    {
                        TlsReportLog.SendFailed(logger, domain, uri.ToString(), ex);
                    }
                }

                if (delivered == 0)
                {
                    await store.ReleaseAsync(day, domain, cancellationToken);
                }
                else
                {
                    sent++;
                    TlsReportLog.Sent(logger, domain, day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), delivered);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                TlsReportLog.SendFailed(logger, domain, "(all)", ex);
                await store.ReleaseAsync(day, domain, CancellationToken.None);
            }
        }

        await store.PruneAsync(day.AddDays(-7), cancellationToken);
        return sent;
    }

    private string SubmitterDomain =>
        _options.ContactInfo.LastIndexOf('@') is var at and >= 0 ? _options.ContactInfo[(at + 1)..] : _options.OrganizationName;

    /// <summary>
    /// RFC 8460 §5.3: a multipart/report (report-type="tlsrpt") with the TLS-Report-Domain and TLS-Report-Submitter
    /// fields, the Subject "Report Domain: ... Submitter: ... Report-ID: &lt;...&gt;", a human-readable part, and the
    /// report as application/tlsrpt+gzip named "submitter!domain!begin!end!id.json.gz". Queued in the spool.
    /// </summary>
    private async Task MailAsync(Uri uri, DateOnly day, string domain, string reportId, byte[] gzip, CancellationToken cancellationToken)
    {
        var to = Uri.UnescapeDataString(uri.OriginalString["mailto:".Length..].Split('?')[0]);
        var begin = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero).ToUnixTimeSeconds();
        var end = begin + 86400;
        var submitter = SubmitterDomain;
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(_options.ContactInfo));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = $"Report Domain: {domain} Submitter: {submitter} Report-ID: <{reportId}>";
        message.Date = time.GetUtcNow();
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(submitter);
        message.Headers.Add("TLS-Report-Domain", domain);
        message.Headers.Add("TLS-Report-Submitter", submitter);
        var report = new Multipart("report");
        report.ContentType.Parameters.Add("report-type", "tlsrpt");
        report.Add(new TextPart("plain")
        {
            Text = $"This is an aggregate TLS report (RFC 8460) from {submitter} for {domain}, {day:yyyy-MM-dd} (UTC).\r\n",
        });
        report.Add(new MimePart("application", "tlsrpt+gzip")
        {
            Content = new MimeContent(new MemoryStream(gzip)),
            ContentDisposition = new ContentDisposition(ContentDisposition.Attachment),
            ContentTransferEncoding = ContentEncoding.Base64,
            FileName = $"{submitter}!{domain}!{begin}!{end}!{reportId.Split('@')[0]}.json.gz",
        });
        message.Body = report;

        using var buffer = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        await message.WriteToAsync(format, buffer, cancellationToken);
        var stored = await spool.StoreAsync(new NewMessage
        {
            Id = Guid.NewGuid(),
            Sender = string.Empty,
            Recipients = [new NewRecipient { Address = to, Notify = "NEVER" }],
            Content = buffer.ToArray(),
            ReceivedAt = time.GetUtcNow(),
            Origin = MessageOrigin.Http,
        }, cancellationToken);
        if (!stored)
        {
            throw new InvalidOperationException("the spool did not take the report message");
        }
    }

    /// <summary>RFC 8460 §5.4: POST with Content-Type application/tlsrpt+gzip; any 2xx is success.</summary>
    private async Task PostAsync(Uri uri, byte[] gzip, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(gzip);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/tlsrpt+gzip");
        using var response = await _http.PostAsync(uri, content, cancellationToken);
        response.EnsureSuccessStatusCode();
    }
}

internal static partial class TlsReportLog
{
    [LoggerMessage(EventId = 5311, Level = LogLevel.Warning, Message = "TLS report counts could not be stored; kept for the next flush")]
    public static partial void FlushFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5312, Level = LogLevel.Warning, Message = "TLS report for {Domain} could not be sent to {Uri}")]
    public static partial void SendFailed(ILogger logger, string domain, string uri, Exception exception);

    [LoggerMessage(EventId = 5313, Level = LogLevel.Debug, Message = "TLS report for {Domain} ({Day}) sent to {Count} rua destination(s)")]
    public static partial void Sent(ILogger logger, string domain, string day, int count);
}
