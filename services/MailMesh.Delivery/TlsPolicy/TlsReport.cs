using System.Globalization;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using MailMesh.Storage;

namespace MailMesh.Delivery;

/// <summary>
/// Builds the RFC 8460 §4.4 aggregate report of one policy domain for one UTC day from the shared counts: one
/// "policies" entry per policy applied, with its summary and failure details.
/// </summary>
internal static class TlsReport
{
    /// <summary>The report as JSON (UTF-8).</summary>
    public static byte[] Build(
        string organizationName, string contactInfo, string reportId, DateOnly day, string domain, IReadOnlyList<TlsReportCount> counts)
    {
        var start = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        var policies = new JsonArray();
        foreach (var group in counts.GroupBy(c => (c.PolicyType, c.PolicyStrings)).OrderBy(g => g.Key.PolicyType, StringComparer.Ordinal))
        {
            var strings = group.Key.PolicyStrings.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var policy = new JsonObject { ["policy-type"] = group.Key.PolicyType };
            if (strings.Length > 0)
            {
                policy["policy-string"] = new JsonArray([.. strings.Select(s => JsonValue.Create(s))]);
            }

            policy["policy-domain"] = domain;
            if (group.Key.PolicyType == "sts")
            {
                // RFC 8460 §4.4: for an MTA-STS policy, the mx patterns it lists.
                var mx = strings.Where(s => s.StartsWith("mx:", StringComparison.Ordinal)).Select(s => s[3..].Trim()).ToList();
                if (mx.Count > 0)
                {
                    policy["mx-host"] = new JsonArray([.. mx.Select(m => JsonValue.Create(m))]);
                }
            }

            var failures = group.Where(c => c.ResultType.Length > 0).ToList();
            var entry = new JsonObject
            {
                ["policy"] = policy,
                ["summary"] = new JsonObject
                {
                    ["total-successful-session-count"] = group.Where(c => c.ResultType.Length == 0).Sum(c => c.Count),
                    ["total-failure-session-count"] = failures.Sum(c => c.Count),
                },
            };
            if (failures.Count > 0)
            {
                var details = new JsonArray();
                foreach (var failure in failures)
                {
                    var detail = new JsonObject
                    {
                        ["result-type"] = failure.ResultType,

                        // The address this host sends from towards the receiving IP (or its default route).
                        ["sending-mta-ip"] = SendingAddress.For(failure.ReceivingIp.Length > 0 ? failure.ReceivingIp : "192.0.2.1"),
                    };

                    if (failure.MxHost.Length > 0)
                    {
                        detail["receiving-mx-hostname"] = failure.MxHost;
                    }

                    if (failure.ReceivingIp.Length > 0)
                    {
                        detail["receiving-ip"] = failure.ReceivingIp;
                    }

                    detail["failed-session-count"] = failure.Count;
                    if (failure.Detail.Length > 0)
                    {
                        detail["failure-reason-code"] = failure.Detail;
                    }

                    details.Add(detail);
                }

                entry["failure-details"] = details;
            }

            policies.Add(entry);
        }

        var report = new JsonObject
        {
            ["organization-name"] = organizationName,
            ["date-range"] = new JsonObject
            {
                ["start-datetime"] = start.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                ["end-datetime"] = start.AddDays(1).AddSeconds(-1).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            },
            ["contact-info"] = contactInfo,
            ["report-id"] = reportId,
            ["policies"] = policies,
        };
        return JsonSerializer.SerializeToUtf8Bytes(report, new JsonSerializerOptions { WriteIndented = false });
    }

    /// <summary>RFC 8460 §5.3: the report is gzip-compressed (application/tlsrpt+gzip).</summary>
    public static byte[] Gzip(byte[] json)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(json);
        }

        return buffer.ToArray();
    }

    /// <summary>
    /// RFC 8460 §3: the <c>_smtp._tls</c> TXT record, "v=TLSRPTv1; rua=uri,uri"; exactly one such record, else none.
    /// Only mailto: and https: URIs are returned.
    /// </summary>
    public static IReadOnlyList<Uri> ParseRua(IReadOnlyList<string> texts)
    {
        var records = texts.Where(t => t.StartsWith("v=TLSRPTv1", StringComparison.Ordinal)).ToList();
        if (records.Count != 1)
        {
            return [];
        }

        foreach (var part in records[0].Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && part[..eq].Trim() == "rua")
            {
                return part[(eq + 1)..]
                    .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                    .Select(u => Uri.TryCreate(u, UriKind.Absolute, out var uri) ? uri : null)
                    .Where(u => u is not null && (u.Scheme == Uri.UriSchemeMailto || u.Scheme == Uri.UriSchemeHttps))
                    .Select(u => u!)
                    .ToList();
            }
        }

        return [];
    }
}

/// <summary>The local address this host uses to reach a remote one (a UDP "connect" sends nothing; it only routes).</summary>
internal static class SendingAddress
{
    public static string For(string remote)
    {
        if (!System.Net.IPAddress.TryParse(remote, out var address))
        {
            return "0.0.0.0";
        }

        try
        {
            using var socket = new System.Net.Sockets.Socket(address.AddressFamily, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
            socket.Connect(address, 25);
            return ((System.Net.IPEndPoint)socket.LocalEndPoint!).Address.ToString();
        }
        catch (System.Net.Sockets.SocketException)
        {
            return address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "::" : "0.0.0.0";
        }
    }
}
