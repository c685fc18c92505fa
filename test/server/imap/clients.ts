// Clients for tests that run several at once on one harness: imapflow and raw sessions on its IMAPS port, logged
// in as USER (raw ones at once, imapflow ones when connected), all ended by closeAll().
import assert from 'node:assert/strict';
import { ImapFlow } from 'imapflow';
import { RawImap, taggedLine } from './raw-client.ts';
import { PASSWORD, USER, type ImapHarness } from './harness.ts';

export interface ClientPool {
  flow(): ImapFlow;
  raw(): Promise<RawImap>;
  closeAll(): Promise<void>;
}

/** `harness` is read when a client is made (the harness is usually started in before()). */
export function clientPool(harness: () => ImapHarness): ClientPool {
  const flows: ImapFlow[] = [];
  const raws: RawImap[] = [];
  return {
    flow() {
      const h = harness();
      const f = new ImapFlow({ host: h.host, port: h.imapsPort, secure: true, auth: { user: USER, pass: PASSWORD }, tls: { ca: [h.certPem], servername: 'localhost' }, logger: false });
      flows.push(f);
      return f;
    },
    async raw() {
      const h = harness();
      const r = await RawImap.tls(h.imapsPort, h.certPem);
      raws.push(r);
      assert.match(taggedLine(await r.command('l', `LOGIN "${USER}" "${PASSWORD}"`), 'l'), /^l OK/);
      return r;
    },
    async closeAll() {
      for (const r of raws) r.close();
      for (const f of flows) await f.logout().catch(() => undefined);
    },
  };
}
