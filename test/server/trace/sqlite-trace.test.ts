import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { openTrace } from '../../../src/server/trace/sqlite-trace.ts';

const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'postern-trace-'));
  dirs.push(d);
  return d;
}

test('events are found by Message-ID (with or without brackets) and by any address, in order', async () => {
  const dir = await tempDir();
  const t = openTrace(dir);
  t.record({ traceId: 'a1', kind: 'received', detail: 'from mx.example.org [192.0.2.1]', messageId: '<m1@example.org>', sender: 'Alice@Example.org' });
  t.record({ traceId: 'b2', kind: 'received', detail: 'other', messageId: 'm2@example.org', sender: 'carol@example.org' });
  t.record({ traceId: 'a1', kind: 'stored', detail: 'INBOX uid 1', recipient: 'bob@example.com', messageId: 'm1@example.org' });
  t.close();
  const r = openTrace(dir, { readOnly: true });
  assert.deepEqual(r.find('m1@example.org').map((x) => x.traceId), ['a1']);
  assert.deepEqual(r.find('<m1@example.org>')[0]!.events.map((e) => e.kind), ['received', 'stored']);
  assert.deepEqual(r.find('BOB@example.com').map((x) => x.traceId), ['a1']);
  assert.deepEqual(r.find('alice@example.org').map((x) => x.traceId), ['a1']);
  assert.deepEqual(r.find('nobody@example.org'), []);
  r.close();
});

test('the trace stays bounded', async () => {
  const dir = await tempDir();
  const t = openTrace(dir, { maxEvents: 500 });
  for (let i = 0; i < 3000; i++) t.record({ traceId: `t${i}`, kind: 'received', detail: 'x', sender: 's@example.org' });
  const kept = t.find('s@example.org', 1000).length;
  assert.ok(kept <= 1500 && kept >= 500, `kept ${kept}`);
  t.close();
});

test('events older than the retention are pruned, younger ones kept', async () => {
  const dir = await tempDir();
  const t = openTrace(dir, { retentionDays: 30 });
  const old = new Date(Date.now() - 31 * 86_400_000);
  for (let i = 0; i < 5; i++) t.record({ traceId: `old${i}`, at: old, kind: 'received', detail: 'x', sender: 'old@example.org' });
  t.record({ traceId: 'young', at: new Date(Date.now() - 29 * 86_400_000), kind: 'received', detail: 'x', sender: 'young@example.org' });
  // Pruning runs every 1000 writes.
  for (let i = 0; i < 1000; i++) t.record({ traceId: `n${i}`, kind: 'received', detail: 'x', sender: 'new@example.org' });
  assert.deepEqual(t.find('old@example.org'), []);
  assert.deepEqual(t.find('young@example.org').map((x) => x.traceId), ['young']);
  assert.equal(t.find('new@example.org', 1000).length, 1000);
  t.close();
});

test('a running writer’s events reach another reader (as `postern trace` opens it) without a close, with the time they were recorded', async () => {
  const dir = await tempDir();
  const t = openTrace(dir);
  const at = Date.now();
  for (let i = 0; i < 3; i++) t.record({ traceId: 'live', kind: 'received', detail: `event ${i}`, sender: 'live@example.org' });
  const r = openTrace(dir, { readOnly: true });
  let events: string[] = [];
  for (let tries = 0; tries < 100 && events.length < 3; tries++) {
    await new Promise((res) => setTimeout(res, 20));
    events = (r.get('live')?.events ?? []).map((e) => e.detail);
  }
  assert.deepEqual(events, ['event 0', 'event 1', 'event 2']);
  const first = r.get('live')!.events[0]!.at.getTime();
  assert.ok(first >= at - 1000 && first <= Date.now(), 'recorded time kept');
  r.close();
  t.close();
});

test('postern trace prints a timeline and fails clearly when nothing matches', async () => {
  const dir = await tempDir();
  const t = openTrace(dir);
  t.record({ traceId: 'q1', kind: 'received', detail: 'from [127.0.0.1]', messageId: 'abc@x.test', sender: 'a@x.test' });
  t.record({ traceId: 'q1', kind: 'deferred', detail: '451 4.3.0 try\r\nlater', recipient: 'r@y.test' });
  t.close();
  const cli = join(import.meta.dirname, '../../../src/cli/main.ts');
  const ok = spawnSync(process.execPath, [cli, 'trace', 'abc@x.test', '--state', dir], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /message q1 +Message-ID <abc@x\.test> +from <a@x\.test>/);
  assert.match(ok.stdout, /deferred +<r@y\.test> +451 4\.3\.0 try {2}later/);
  const none = spawnSync(process.execPath, [cli, 'trace', 'zzz@x.test', '--state', dir], { encoding: 'utf8' });
  assert.equal(none.status, 1);
  assert.match(none.stdout, /no message found/);
  const missing = spawnSync(process.execPath, [cli, 'trace', 'a', '--state', join(dir, 'nope')], { encoding: 'utf8' });
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /no trace in/);
});
