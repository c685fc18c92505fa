// Crash safety: SIGKILL the server process in the middle of a burst of APPENDs from several connections; after
// a restart on the same state folder, every APPEND that was answered OK is there, byte for byte, with its flags.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RawImap, taggedLine } from './raw-client.ts';
import { PASSWORD, USER, writeCertificate } from './harness.ts';

const children: ChildProcess[] = [];
let dir = '';

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startServer(stateDir: string, certFile: string, keyFile: string): Promise<{ child: ChildProcess; port: number; missing: number }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'serve-imap.ts'), stateDir, certFile, keyFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const info = JSON.parse(line) as { imaps: number; missing: number };
  return { child, port: info.imaps, missing: info.missing };
}

interface Appended { uid: number; body: string; flags: string[] }

function message(conn: number, i: number): string {
  // Sizes vary so that some APPENDs are mid-write when the kill lands.
  return `From: burst@example.org\r\nSubject: burst ${conn}-${i}\r\nMessage-ID: <b${conn}.${i}@example.org>\r\n\r\n${`line ${conn}-${i} `.repeat(1 + ((i * 37) % 400))}\r\n`;
}

async function appendLoop(port: number, ca: string, conn: number, ok: Appended[], stop: { now: boolean }): Promise<void> {
  const c = await RawImap.tls(port, ca);
  await c.command('l', `LOGIN "${USER}" "${PASSWORD}"`);
  try {
    for (let i = 0; !stop.now; i++) {
      const body = message(conn, i);
      const flags = i % 3 === 0 ? ['\\Seen'] : i % 3 === 1 ? ['\\Flagged', '$Burst'] : [];
      const r = await c.command(`a${i}`, `APPEND INBOX (${flags.join(' ')}) {${Buffer.byteLength(body)}+}\r\n${body}`);
      const m = /^a\d+ OK \[APPENDUID \d+ (\d+)\]/m.exec(taggedLine(r, `a${i}`));
      if (m) ok.push({ uid: Number(m[1]), body, flags });
    }
  } catch {
    // The server was killed: the connection drops mid-command.
  } finally {
    c.close();
  }
}

test('every APPEND answered OK before a SIGKILL is there after restart, intact, with its flags', async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-imap-crash-'));
  const { certFile, keyFile, cert } = await writeCertificate(dir);
  const stateDir = join(dir, 'state');
  const first = await startServer(stateDir, certFile, keyFile);
  const ok: Appended[] = [];
  const stop = { now: false };
  const loops = [0, 1, 2].map((n) => appendLoop(first.port, cert, n, ok, stop));
  while (ok.length < 60) await new Promise((r) => setTimeout(r, 5));
  first.child.kill('SIGKILL');
  stop.now = true;
  await Promise.all(loops);
  assert.ok(ok.length >= 60);

  const second = await startServer(stateDir, certFile, keyFile);
  assert.equal(second.missing, 0, 'no index row lost its file');
  const c = await RawImap.tls(second.port, cert);
  await c.command('l', `LOGIN "${USER}" "${PASSWORD}"`);
  await c.command('s', 'SELECT INBOX');
  for (const a of ok) {
    const r = await c.command('f', `UID FETCH ${a.uid} (FLAGS BODY.PEEK[])`);
    const m = /\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\) BODY\[\] \{(\d+)\}\r\n/.exec(r);
    assert.ok(m, `UID ${a.uid} is missing after the restart: ${r.slice(0, 200)}`);
    const start = m.index + m[0].length;
    const body = r.slice(start, start + Number(m[3]));
    assert.equal(body, a.body, `UID ${a.uid} content`);
    assert.deepEqual(m[2]!.split(' ').filter((f) => f && f !== '\\Recent').sort(), [...a.flags].sort(), `UID ${a.uid} flags`);
  }
  c.close();
  second.child.kill('SIGKILL');
});
