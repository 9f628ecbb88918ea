// mailauth (postalsys), an independent implementation of SPF, DKIM, DMARC and ARC, asked about the same messages and
// the same test DNS server as MailMesh (tests/MailMesh.Testing/Dkim/Mailauth.cs runs it).
//
//   node authenticate.mjs <dns address> <dns port>
//
// Reads one JSON case per line on stdin and writes one JSON result per line on stdout:
//   {"ip", "helo", "sender", "message": base64}  -> {"spf", "dkim": [...], "arc", "dmarc": {"result", "policy", "pct"}}
//   {"ip", "helo", "sender"} (no message)         -> {"spf"} (check_host only)
import { Resolver } from 'node:dns/promises';
import { createInterface } from 'node:readline';
import mailauth from 'mailauth';

const [address, port] = process.argv.slice(2);
// The test DNS server runs inside the test process, which may be busy with other tests on a 2-core machine: one
// 2-second try made a late answer a DNS timeout, so temperror where the zone says otherwise. pyspf gets 5 seconds.
const dns = new Resolver({ timeout: 5000, tries: 3 });
dns.setServers([`${address}:${port}`]);
const resolver = (name, type) => dns.resolve(name, type);

for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) {
        continue;
    }

    const input = JSON.parse(line);
    const options = { ip: input.ip, helo: input.helo, sender: input.sender, mta: 'mailauth.test', resolver };
    let output;
    if (input.message === undefined) {
        const spf = await mailauth.spf(options);
        output = { spf: spf.status.result };
    } else {
        const result = await mailauth.authenticate(Buffer.from(input.message, 'base64'), { ...options, disableBimi: true });
        output = {
            spf: result.spf?.status?.result ?? null,
            dkim: (result.dkim?.results ?? []).map(r => r.status.result),
            arc: result.arc?.status?.result ?? null,
            dmarc: result.dmarc ? { result: result.dmarc.status.result, policy: result.dmarc.policy ?? null, pct: result.dmarc.pct ?? null } : null,
        };
    }

    process.stdout.write(JSON.stringify(output) + '\n');
}
