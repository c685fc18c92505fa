import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
const dir = mkdtempSync('/tmp/postern-load-');
const port = 20000 + Math.floor(Math.random() * 20000);
const c = spawn(process.execPath, ['/work/main/test/server/smtp/fixtures/mx-process.ts', dir, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => c.stdout!.once('data', r));
const t0 = Date.now();
const N = 300;
const t = nodemailer.createTransport({ host: '127.0.0.1', port, pool: true, maxConnections: 10, maxMessages: Infinity, ignoreTLS: true });
await Promise.all(Array.from({ length: N }, (_, i) => t.sendMail({ from: 'a@x.test', to: 'bob@example.com', subject: 's', text: 'x'.repeat(1000), messageId: `<l${i}@x>` })));
console.log('accepted', N, 'in', Date.now() - t0, 'ms');
for (let i = 0; i < 200; i++) { const left = readdirSync(join(dir, 'queue')).filter((f) => f.endsWith('.json')).length; if (!left) break; if (i % 10 === 0) console.log('left', left); await new Promise((r) => setTimeout(r, 100)); }
console.log('drained at', Date.now() - t0, 'ms; stored', readdirSync(join(dir, 'mail/bob@example.com/INBOX')).length);
t.close(); c.kill();
