// Report mail as large receivers send it (zip, xml.gz, xml, json.gz), built with nodemailer's MIME composer and
// real zip/gzip tools, ingested into the SQLite store and summarised by `postern reports`. Hostile attachments
// (zip and gzip bombs, huge XML, entity declarations) are refused without storing anything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { ensureDebianPackages } from '../../support/debian.ts';
import { ReportStore } from '../../../src/server/reports/report-store.ts';
import { ingestReportMessage, reportAddresses, isReportRecipient } from '../../../src/server/reports/ingest.ts';
import { summariseReports, formatReportSummary } from '../../../src/server/reports/summary.ts';

ensureDebianPackages(['python3']);

const fixtures = new URL('../../fixtures/reports/', import.meta.url);
const GOOGLE_XML = 'google.com!example.com!1795737600!1795823999.xml';
const MS_XML = 'enterprise.protection.outlook.com!example.com!1795737600!1795824000.xml';
const YAHOO_XML = 'yahoo.com!example.com!1795737600!1795823999.xml';
const GOOGLE_TLS = 'google.com!example.com!1795737600!1795823999.json';

let dir: string;
const now = new Date('2026-11-28T06:00:00Z');

async function fixture(name: string): Promise<Buffer> {
  return readFile(new URL(encodeURIComponent(name), fixtures));
}

/** Zips files with Python's zipfile (deflate), as an independent producer of the format. */
function pyZip(entries: { name: string; path?: string; zerosMiB?: number }[]): Buffer {
  const out = join(dir, `z${Math.random().toString(36).slice(2)}.zip`);
  const script = `import sys, json, zipfile
spec = json.loads(sys.argv[2])
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    for e in spec:
        if 'path' in e: z.write(e['path'], e['name'])
        else:
            with z.open(e['name'], 'w') as f:
                block = b'\\0' * (1 << 20)
                for _ in range(e['zerosMiB']): f.write(block)
`;
  execFileSync('python3', ['-c', script, out, JSON.stringify(entries)]);
  return execFileSync('cat', [out]);
}

async function reportMail(from: string, subject: string, attachments: { filename: string; content: Buffer; contentType: string }[]): Promise<Buffer> {
  return new MailComposer({
    from, to: 'dmarc-reports@example.com', subject, text: 'This is an aggregate report.',
    attachments,
  }).compile().build();
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-reports-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('report addresses from the server config are recognised, mailto: and case ignored', () => {
  const addrs = reportAddresses({ dmarc: { reportAddress: 'mailto:DMARC-Reports@example.com' }, tlsRpt: { reportAddress: 'tls@example.com' } });
  assert.equal(isReportRecipient(addrs, ['dmarc-reports@EXAMPLE.com']), true);
  assert.equal(isReportRecipient(addrs, ['TLS@example.com']), true);
  assert.equal(isReportRecipient(addrs, ['alice@example.com']), false);
});

test('zip, xml.gz, plain xml and tlsrpt json.gz reports parse into the right summary', async () => {
  const state = join(dir, 'state-ok');
  const store = new ReportStore(state);
  try {
    const googleZip = pyZip([{ name: GOOGLE_XML, path: new URL(encodeURIComponent(GOOGLE_XML), fixtures).pathname }]);
    const mails = [
      await reportMail('noreply-dmarc-support@google.com', 'Report domain: example.com Submitter: google.com',
        [{ filename: GOOGLE_XML.replace(/\.xml$/, '.zip'), content: googleZip, contentType: 'application/zip' }]),
      await reportMail('dmarcreport@microsoft.com', 'Report Domain: example.com Submitter: enterprise.protection.outlook.com',
        [{ filename: `${MS_XML}.gz`, content: gzipSync(await fixture(MS_XML)), contentType: 'application/gzip' }]),
      await reportMail('dmarchelp@yahooinc.com', 'Report Domain: example.com Submitter: yahoo.com',
        [{ filename: YAHOO_XML, content: await fixture(YAHOO_XML), contentType: 'application/xml' }]),
      await reportMail('noreply-smtp-tls-reporting@google.com', 'Report Domain: example.com Submitter: google.com',
        [{ filename: `${GOOGLE_TLS}.gz`, content: gzipSync(await fixture(GOOGLE_TLS)), contentType: 'application/tlsrpt+gzip' }]),
    ];
    for (const m of mails) {
      const r = await ingestReportMessage(store, m, now);
      assert.deepEqual(r.refused, []);
      assert.equal(r.stored.length, 1);
      assert.equal(r.stored[0]?.duplicate, false);
    }
    // The same report mailed twice is stored once.
    const again = await ingestReportMessage(store, mails[0]!, now);
    assert.equal(again.stored[0]?.duplicate, true);

    const { dmarc, tls } = store.list(new Date('2026-11-01T00:00:00Z'));
    assert.equal(dmarc.length, 3);
    assert.equal(tls.length, 1);
    // Predefined XML entities are decoded (and nothing else is expanded).
    const yahoo = dmarc.find((r) => r.orgName === 'Yahoo');
    assert.deepEqual(yahoo?.records[0]?.reasons, [{ type: 'forwarded', comment: 'AT&T relay' }]);
    assert.equal(yahoo?.begin.toISOString(), '2026-11-27T00:00:00.000Z');
    const s = summariseReports(dmarc, tls);
    assert.deepEqual(s.reporters.map((r) => r.org), ['Enterprise Outlook', 'Google Inc.', 'google.com', 'Yahoo']);
    assert.deepEqual(s.dmarc.domains, ['example.com']);
    assert.equal(s.dmarc.messages, 26);
    assert.equal(s.dmarc.dmarcPass, 21);
    assert.equal(s.dmarc.spfAlignedPass, 16);
    assert.equal(s.dmarc.dkimAlignedPass, 21);
    const own = s.dmarc.sources.find((x) => x.sourceIp === '203.0.113.10');
    assert.equal(own?.messages, 16);
    assert.equal(own?.dmarcPass, 16);
    assert.deepEqual(own?.reporters, ['Enterprise Outlook', 'google.com']);
    const newsletter = s.dmarc.sources.find((x) => x.sourceIp === '198.51.100.7');
    assert.equal(newsletter?.dmarcPass, 0);
    assert.match(newsletter?.failures[0]?.why ?? '', /DKIM pass for d=newsletter-host\.example\.net \(not aligned with example\.com\)/);
    assert.match(newsletter?.failures[0]?.why ?? '', /SPF pass for bounce\.newsletter-host\.example\.net \(not aligned/);
    const spoof = s.dmarc.sources.find((x) => x.sourceIp === '192.0.2.99');
    assert.deepEqual(spoof?.failures, [{ why: 'no DKIM signature; SPF fail for example.com', messages: 2 }]);
    assert.deepEqual(spoof?.dispositions, { quarantine: 2 });
    const v6 = s.dmarc.sources.find((x) => x.sourceIp === '2001:db8::10');
    assert.equal(v6?.dmarcPass, 5);
    const sts = s.tls.policies[0];
    assert.equal(sts?.policyDomain, 'example.com');
    assert.equal(sts?.successfulSessions, 20);
    assert.equal(sts?.failedSessions, 2);
    assert.equal(sts?.failures[0]?.resultType, 'certificate-expired');
    assert.equal(sts?.failures[0]?.receivingMx, 'mail.example.com');
  } finally {
    store.close();
  }
  // The CLI reads the same database and prints the same figures.
  const cli = join(process.cwd(), 'src/cli/main.ts');
  const json = JSON.parse(execFileSync(process.execPath, [cli, 'reports', '--state', state, '--json', '--days', '3650'], { encoding: 'utf8' }));
  assert.equal(json.dmarc.messages, 26);
  assert.equal(json.tls.policies[0].failedSessions, 2);
  // The text form (what `postern reports` prints without --json) of the same summary.
  const textOut = formatReportSummary(json);
  assert.match(textOut, /FAIL 192\.0\.2\.99 +From example\.com: 2 msgs/);
  assert.match(textOut, /2 × certificate-expired at mail\.example\.com \(203\.0\.113\.10\) from 209\.85\.220\.41/);
});

test('hostile attachments are refused, recorded, and nothing is stored', async () => {
  const state = join(dir, 'state-hostile');
  const store = new ReportStore(state);
  try {
    const laughs = `<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
      `<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n<feedback><report_metadata><org_name>&lol3;</org_name></report_metadata></feedback>`;
    const xxe = `<?xml version="1.0"?>\n<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>`;
    // Valid report structure, 8 MB of records: over the decompressed cap.
    const record = (await fixture(GOOGLE_XML)).toString().match(/<record>[\s\S]*?<\/record>/)![0];
    const huge = `<?xml version="1.0"?><feedback><report_metadata><org_name>x</org_name><report_id>1</report_id><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>example.com</domain></policy_published>${record.repeat(Math.ceil(8e6 / record.length))}</feedback>`;
    const zipBomb = pyZip([{ name: 'google.com!example.com!1!2.xml', zerosMiB: 64 }]);
    assert.ok(zipBomb.length < 1024 * 1024, 'the bomb is small when compressed');
    const gzipBomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    const cases: [string, { filename: string; content: Buffer; contentType: string }, RegExp][] = [
      ['billion laughs', { filename: 'a.xml', content: Buffer.from(laughs), contentType: 'text/xml' }, /DOCTYPE or entities/],
      ['external entity', { filename: 'b.xml', content: Buffer.from(xxe), contentType: 'text/xml' }, /DOCTYPE or entities/],
      ['huge XML', { filename: 'c.xml.gz', content: gzipSync(huge), contentType: 'application/gzip' }, /decompresses to more than/],
      ['zip bomb', { filename: 'd.zip', content: zipBomb, contentType: 'application/zip' }, /decompresses to more than .*bomb/],
      ['gzip bomb', { filename: 'e.json.gz', content: gzipBomb, contentType: 'application/tlsrpt+gzip' }, /decompresses to more than .*bomb/],
      ['not a report', { filename: 'f.xml', content: Buffer.from('<html><body>hi</body></html>'), contentType: 'text/xml' }, /<feedback> is missing/],
      ['bad json', { filename: 'g.json', content: Buffer.from('{"organization-name": 5}'), contentType: 'application/tlsrpt+json' }, /not RFC 8460/],
    ];
    for (const [what, att, expected] of cases) {
      const before = process.memoryUsage().rss;
      const r = await ingestReportMessage(store, await reportMail('x@attacker.example', what, [att]), now);
      assert.equal(r.stored.length, 0, what);
      assert.equal(r.refused.length, 1, what);
      assert.match(r.refused[0]!, expected, what);
      // Bombs stop at the cap: resident memory does not grow by the bomb's full size.
      assert.ok(process.memoryUsage().rss - before < 150 * 1024 * 1024, `${what}: memory stayed bounded`);
    }
    const { dmarc, tls } = store.list(new Date(0));
    assert.equal(dmarc.length + tls.length, 0);
    assert.equal(store.refusals(new Date(0)).length, cases.length);
  } finally {
    store.close();
  }
});

test('a zip with too many entries or an unsupported method is refused', async () => {
  const state = join(dir, 'state-zip');
  const store = new ReportStore(state);
  try {
    const src = join(dir, 'small.xml');
    await writeFile(src, await fixture(GOOGLE_XML));
    const many = pyZip(Array.from({ length: 20 }, (_, i) => ({ name: `r${i}.xml`, path: src })));
    const r = await ingestReportMessage(store, await reportMail('x@y.example', 'many', [{ filename: 'many.zip', content: many, contentType: 'application/zip' }]), now);
    assert.match(r.refused[0] ?? '', /20 entries/);
    const notZip = await ingestReportMessage(store, await reportMail('x@y.example', 'junk', [{ filename: 'junk.zip', content: Buffer.from('PK not really'), contentType: 'application/zip' }]), now);
    assert.match(notZip.refused[0] ?? '', /no end-of-central-directory/);
  } finally {
    store.close();
  }
});

test('a DMARCbis report with a namespace prefix parses; a mail without report attachments stores and refuses nothing', async () => {
  const state = join(dir, 'state-ns');
  const store = new ReportStore(state);
  try {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0">
  <d:version>1.0</d:version>
  <d:report_metadata><d:org_name>mail.example.net</d:org_name><d:email>dmarc@example.net</d:email>
    <d:report_id>ns-1</d:report_id><d:date_range><d:begin>1795737600</d:begin><d:end>1795823999</d:end></d:date_range></d:report_metadata>
  <d:policy_published><d:domain>example.com</d:domain><d:p>reject</d:p><d:discovery_method>treewalk</d:discovery_method></d:policy_published>
  <d:record><d:row><d:source_ip>203.0.113.10</d:source_ip><d:count>7</d:count>
    <d:policy_evaluated><d:disposition>pass</d:disposition><d:dkim>pass</d:dkim><d:spf>pass</d:spf></d:policy_evaluated></d:row>
    <d:identifiers><d:header_from>example.com</d:header_from></d:identifiers>
    <d:auth_results><d:dkim><d:domain>example.com</d:domain><d:selector>postern-ed25519</d:selector><d:result>pass</d:result></d:dkim>
      <d:spf><d:domain>example.com</d:domain><d:result>pass</d:result></d:spf></d:auth_results></d:record>
</d:feedback>`;
    const r = await ingestReportMessage(store, await reportMail('dmarc@example.net', 'ns', [{ filename: 'r.xml', content: Buffer.from(xml), contentType: 'text/xml' }]), now);
    assert.deepEqual(r.refused, []);
    const report = store.list(new Date(0)).dmarc[0];
    assert.equal(report?.policy.p, 'reject');
    assert.equal(report?.records[0]?.count, 7);
    assert.equal(report?.records[0]?.dkimResults[0]?.selector, 'postern-ed25519');
    const human = await ingestReportMessage(store, await reportMail('bob@example.net', 'question about your DMARC', []), now);
    assert.deepEqual(human, { stored: [], refused: [] });
    assert.equal(store.refusals(new Date(0)).length, 0);
  } finally {
    store.close();
  }
});
