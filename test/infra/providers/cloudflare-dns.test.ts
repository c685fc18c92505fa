// The Cloudflare DNS-01 calls, checked by a local HTTP server standing in for api.cloudflare.com that verifies
// method, path, headers and body the way the real API needs them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { cloudflareChallengeApi } from '../../../src/infra/providers/cloudflare-dns.ts';

const ZONE = '0123456789abcdef0123456789abcdef';
const TOKEN = 'cf-test-token';
interface Rec { id: string; type: string; name: string; content: string; ttl: number }
let records: Rec[] = [];
const seen: string[] = [];
const problems: string[] = [];
let server: Server;
let base = '';

async function body(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of req) s += c;
  return s;
}

before(async () => {
  server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push(`${req.method} ${url.pathname}${url.search}`);
    const reply = (status: number, payload: object) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(payload)); };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      problems.push(`bad authorization ${req.headers.authorization}`);
      return reply(403, { success: false, errors: [{ code: 10000, message: 'Authentication error' }] });
    }
    const prefix = `/client/v4/zones/${ZONE}/dns_records`;
    if (req.method === 'POST' && url.pathname === prefix) {
      if (req.headers['content-type'] !== 'application/json') problems.push(`content-type ${req.headers['content-type']}`);
      const b = JSON.parse(await body(req)) as Rec;
      if (b.type !== 'TXT' || !b.name || !/^".*"$/.test(b.content) || typeof b.ttl !== 'number') problems.push(`bad body ${JSON.stringify(b)}`);
      const rec = { ...b, id: `rec${records.length + 1}` };
      records.push(rec);
      return reply(200, { success: true, errors: [], result: rec });
    }
    if (req.method === 'GET' && url.pathname === prefix) {
      const list = records.filter((r) => r.type === url.searchParams.get('type') && r.name === url.searchParams.get('name'));
      return reply(200, { success: true, errors: [], result: list });
    }
    const m = /^\/client\/v4\/zones\/([^/]+)\/dns_records\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'DELETE' && m && m[1] === ZONE) {
      const before = records.length;
      records = records.filter((r) => r.id !== m[2]);
      return before === records.length ? reply(404, { success: false, errors: [{ code: 81044, message: 'Record does not exist.' }] })
        : reply(200, { success: true, errors: [], result: { id: m[2] } });
    }
    problems.push(`unexpected ${req.method} ${url.pathname}`);
    return reply(404, { success: false, errors: [{ code: 7003, message: 'No route for that URI' }] });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  base = `http://127.0.0.1:${addr.port}/client/v4`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

test('setTxt creates a quoted TXT record and clearTxt deletes only that value', async () => {
  const api = await cloudflareChallengeApi({ apiToken: TOKEN, zoneId: ZONE, apiBaseUrl: base });
  await api.setTxt('_acme-challenge.mail.example.com', 'value-one');
  await api.setTxt('_acme-challenge.mail.example.com', 'value-two');
  assert.deepEqual(records.map((r) => [r.name, r.content, r.ttl]), [
    ['_acme-challenge.mail.example.com', '"value-one"', 60],
    ['_acme-challenge.mail.example.com', '"value-two"', 60],
  ]);
  await api.clearTxt('_acme-challenge.mail.example.com', 'value-one');
  assert.deepEqual(records.map((r) => r.content), ['"value-two"']);
  // Clearing a value that is already gone is not an error (a retried destroy).
  await api.clearTxt('_acme-challenge.mail.example.com', 'value-one');
  assert.deepEqual(problems, []);
  assert.ok(seen.includes(`DELETE /client/v4/zones/${ZONE}/dns_records/rec1`));
  assert.ok(seen.some((s) => s.startsWith(`GET /client/v4/zones/${ZONE}/dns_records?type=TXT&name=_acme-challenge.mail.example.com`)));
});

test("Cloudflare's error reaches the caller with its code and message", async () => {
  const api = await cloudflareChallengeApi({ apiToken: 'wrong', zoneId: ZONE, apiBaseUrl: base });
  await assert.rejects(api.setTxt('_acme-challenge.x.example.com', 'v'), /Cloudflare POST \/dns_records failed: 10000 Authentication error/);
  problems.length = 0;
});

test('missing token or malformed zone id is refused before any request', async () => {
  const count = seen.length;
  await assert.rejects(cloudflareChallengeApi({ zoneId: ZONE, apiBaseUrl: base }), /apiToken is missing/);
  await assert.rejects(cloudflareChallengeApi({ apiToken: TOKEN, zoneId: '../../etc', apiBaseUrl: base }), /is not a 32-hex-digit zone id/);
  assert.equal(seen.length, count);
});
