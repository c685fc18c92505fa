// ENABLE (RFC 5161): CONDSTORE, QRESYNC (which implies CONDSTORE, RFC 7162 3.2.3) and IMAP4rev2.
import type { CommandHandler } from '../session.ts';
import { ok } from '../session.ts';

const KNOWN = new Set(['CONDSTORE', 'QRESYNC', 'IMAP4REV2']);
const MAX_ITEMS = 20;

export const enable: CommandHandler = {
  name: 'ENABLE',
  states: ['auth'],
  async run(s, a) {
    const newly: string[] = [];
    let n = 0;
    while (a.remaining > 0) {
      if (++n > MAX_ITEMS) break;
      const word = a.keyword('capability');
      if (!KNOWN.has(word)) continue;
      const name = word === 'IMAP4REV2' ? 'IMAP4rev2' : word;
      for (const c of name === 'QRESYNC' ? ['CONDSTORE', 'QRESYNC'] : [name]) {
        if (!s.enabled.has(c)) {
          s.enabled.add(c);
          if (c === name) newly.push(c);
        }
      }
    }
    if (s.enabled.has('CONDSTORE')) s.condstore = true;
    s.hold(`* ENABLED${newly.map((c) => ` ${c}`).join('')}\r\n`);
    return ok('ENABLE completed');
  },
};
