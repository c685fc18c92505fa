// Report mail through the whole server: a DMARC aggregate report (zip) and a TLS-RPT report (json.gz) sent with
// nodemailer to the MX of a real Postern (startServer, default services) land in the report store AND in the
// mailbox of the account behind the rua= address, read back with imapflow; `postern reports` then summarises them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { argon2Sync, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { pino } from 'pino';
import { ensureDebianPackages } from '../../support/debian.ts';
import { makeTestCa } from '../diagnostics/test-pki.ts';
import { startServer, type RunningServer } from '../../../src/server/main.ts';
import { parseServerConfig } from '../../../src/plan/server-config.ts';
import { ReportStore } from '../../../src/server/reports/report-store.ts';

ensureDebianPackages(['openssl', 'python3']);

const PASSWORD = 'report-reader-1';
const fixtures = new URL('../../fixtures/reports/', import.meta.url);
const GOOGLE_XML = 'google.com!example.com!1795737600!1795823999.xml';
const GOOGLE_TLS = 'google.com!example.com!1795737600!1795823999.json';

let dir: string;
let server: RunningServer | undefined;
let caPem: string;
const port = (scheme: string) => Number(new URL(server!.listeners.find((l) => l.scheme === scheme)!.url).port);

function phc(password: string): string {
  const salt = randomBytes(16);
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  const hash = argon2Sync('argon2id', { message: password, nonce: salt, parallelism: 1, tagLength: 32, memory: 8192, passes: 1 });
  return `$argon2id$v=19$m=8192,t=1,p=1$${b64(salt)}$${b64(hash)}`;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-report-e2e-'));
  const ca = await makeTestCa(join(dir, 'ca'));
  caPem = ca.certPem;
  const cert = await ca.issue('mail', ['mail.example.com'], new Date(Date.now() - 86_400_000), new Date(Date.now() + 60 * 86_400_000));
  const parsed = parseServerConfig({
    domain: 'example.com', hostname: 'mail.example.com', stateDir: join(dir, 'state'), listenAddress: '127.0.0.1',
    ports: { smtp: 25, submission: 0, submissions: 0, imap: 0, imaps: 993, pop3: 0, pop3s: 0, https: 0, http: 0 },
    tls: { certFile: cert.certFile, keyFile: cert.keyFile },
    users: [{ address: 'alice@example.com', passwordHash: phc(PASSWORD) }],
    aliases: [{ from: 'dmarc-reports@example.com', to: ['alice@example.com'] }, { from: 'tls-reports@example.com', to: ['alice@example.com'] }],
    dmarc: { reportAddress: 'dmarc-reports@example.com' },
    tlsRpt: { reportAddress: 'tls-reports@example.com' },
  });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
  server = await startServer(parsed.value, { ephemeralPorts: true, logger: pino({ level: 'silent' }) });
});

after(async () => {
  await server?.stop(0);
  await rm(dir, { recursive: true, force: true });
});

test('report mail is parsed into the report store and still delivered to the mailbox', async () => {
  const xmlPath = new URL(encodeURIComponent(GOOGLE_XML), fixtures).pathname;
  const zipPath = join(dir, 'report.zip');
  execFileSync('python3', ['-c', 'import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z: z.write(sys.argv[2], sys.argv[3])', zipPath, xmlPath, GOOGLE_XML]);
  const mx = nodemailer.createTransport({ host: '127.0.0.1', port: port('smtp'), secure: false, requireTLS: true, tls: { ca: caPem, servername: 'mail.example.com' }, name: 'mail-sor-f41.google.example' });
  await mx.sendMail({
    from: 'noreply-dmarc-support@google.example', to: 'dmarc-reports@example.com', messageId: '<dmarc-report-1@google.example>',
    subject: 'Report domain: example.com Submitter: google.com Report-ID: 4471950731279351416', text: 'This is an aggregate report from google.com.',
    attachments: [{ filename: GOOGLE_XML.replace(/\.xml$/, '.zip'), content: await readFile(zipPath), contentType: 'application/zip' }],
  });
  await mx.sendMail({
    from: 'noreply-smtp-tls-reporting@google.example', to: 'tls-reports@example.com', messageId: '<tls-report-1@google.example>',
    subject: 'Report Domain: example.com Submitter: google.com Report-ID: <2026-11-27T00:00:00Z_example.com@google.com>', text: 'TLS report',
    headers: { 'TLS-Report-Domain': 'example.com', 'TLS-Report-Submitter': 'google.com' },
    attachments: [{ filename: `${GOOGLE_TLS}.gz`, content: gzipSync(await readFile(new URL(encodeURIComponent(GOOGLE_TLS), fixtures))), contentType: 'application/tlsrpt+gzip' }],
  });

  const state = join(dir, 'state');
  for (let i = 0; i < 200; i++) {
    if (existsSync(join(state, 'reports.sqlite'))) {
      const store = new ReportStore(state);
      const n = store.list(new Date(0));
      store.close();
      if (n.dmarc.length + n.tls.length === 2) break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const cli = join(import.meta.dirname, '../../../src/cli/main.ts');
  const s = JSON.parse(execFileSync(process.execPath, [cli, 'reports', '--state', state, '--json'], { encoding: 'utf8' })) as { dmarc: { messages: number }; tls: { policies: { failedSessions: number }[] } };
  assert.equal(s.dmarc.messages, 15);
  assert.equal(s.tls.policies[0]?.failedSessions, 2);

  const imap = new ImapFlow({ host: '127.0.0.1', port: port('imaps'), secure: true, tls: { ca: caPem, servername: 'mail.example.com' }, auth: { user: 'alice@example.com', pass: PASSWORD }, logger: false });
  await imap.connect();
  try {
    // Reports are read before the message is filed, and filing runs on the delivery thread at a lower priority:
    // under load the mailbox may lag the report store by a moment.
    const filed = async () => { const st = await imap.status('INBOX', { messages: true }); return st ? st.messages : 0; };
    for (let i = 0; i < 400 && (await filed()) !== 2; i++) await new Promise((r) => setTimeout(r, 50));
    const lock = await imap.getMailboxLock('INBOX');
    try {
      const subjects: string[] = [];
      for await (const m of imap.fetch('1:*', { envelope: true })) subjects.push(m.envelope?.subject ?? '');
      assert.equal(subjects.length, 2);
      assert.ok(subjects.some((x) => x.startsWith('Report domain: example.com Submitter: google.com')));
    } finally {
      lock.release();
    }
  } finally {
    await imap.logout();
  }
});
