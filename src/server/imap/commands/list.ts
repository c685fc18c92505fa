// LIST (RFC 9051 6.3.9) with LIST-EXTENDED selection and return options (RFC 5258), SPECIAL-USE (RFC 6154),
// LIST-STATUS (RFC 5819); and LSUB (RFC 3501 6.3.9).
import type { MailboxInfo } from '../../store/types.ts';
import type { CommandHandler, Session } from '../session.ts';
import { ok } from '../session.ts';
import { Args, valueText } from '../args.ts';
import { decodeMutf7 } from '../mutf7.ts';
import { compilePattern, type MailboxMatcher } from '../pattern.ts';
import { ImapSyntaxError } from '../tokens.ts';
import { parseStatusItems, writeStatus } from './status.ts';

const MAX_PATTERNS = 20;
/** Pattern matching costs pattern length × name length per mailbox: bound the patterns of one LIST. */
const MAX_PATTERN_CHARS = 256;

interface ListOptions {
  subscribedOnly: boolean;
  specialUseOnly: boolean;
  recursiveMatch: boolean;
  returnSubscribed: boolean;
  returnStatus: string[] | null;
}

function patternText(s: Session, v: ReturnType<Args['any']>): string {
  const raw = valueText(v, 'mailbox pattern');
  return s.rev2 ? raw : decodeMutf7(raw);
}

function parseList(s: Session, a: Args): { options: ListOptions; ref: string; patterns: string[] } {
  const options: ListOptions = { subscribedOnly: false, specialUseOnly: false, recursiveMatch: false, returnSubscribed: false, returnStatus: null };
  if (a.peek()?.type === 'list') {
    for (const v of a.list('selection options')) {
      const o = v.type === 'atom' ? v.value.toUpperCase() : '';
      if (o === 'SUBSCRIBED') options.subscribedOnly = true;
      else if (o === 'SPECIAL-USE') options.specialUseOnly = true;
      else if (o === 'RECURSIVEMATCH') options.recursiveMatch = true;
      else if (o !== 'REMOTE') throw new ImapSyntaxError(`Unknown LIST selection option ${o.slice(0, 30)}`);
    }
    if (options.recursiveMatch && !options.subscribedOnly) throw new ImapSyntaxError('RECURSIVEMATCH needs another selection option');
  }
  const ref = patternText(s, a.any('reference name'));
  const pv = a.any('mailbox pattern');
  const patterns = pv.type === 'list' ? pv.value.map((v) => patternText(s, v)) : [patternText(s, pv)];
  if (patterns.length === 0 || patterns.length > MAX_PATTERNS) throw new ImapSyntaxError('Give 1 to 20 patterns');
  if (patterns.reduce((n, p) => n + p.length, ref.length) > MAX_PATTERN_CHARS) throw new ImapSyntaxError('Patterns too long', 'LIMIT');
  if (a.remaining > 0) {
    if (a.keyword('RETURN') !== 'RETURN') throw new ImapSyntaxError('Expected RETURN');
    const r = new Args(a.list('return options'));
    while (r.remaining > 0) {
      const o = r.keyword('return option');
      if (o === 'SUBSCRIBED') options.returnSubscribed = true;
      else if (o === 'STATUS') options.returnStatus = parseStatusItems(r.list('STATUS items'));
      else if (o !== 'CHILDREN' && o !== 'SPECIAL-USE') throw new ImapSyntaxError(`Unknown LIST return option ${o.slice(0, 30)}`);
    }
  }
  a.end();
  return { options, ref, patterns };
}

function hasChildren(name: string, all: ReadonlySet<string>): boolean {
  const prefix = `${name}/`;
  for (const n of all) if (n.startsWith(prefix)) return true;
  return false;
}

async function listLine(s: Session, verb: 'LIST' | 'LSUB', attrs: string[], name: string, extra = ''): Promise<void> {
  const w = s.builder().raw(`* ${verb} (${attrs.join(' ')}) "/"`).string(s.encodeName(name));
  if (extra) w.raw(extra);
  s.hold(w.finish());
}

export const list: CommandHandler = {
  name: 'LIST',
  states: ['auth', 'selected'],
  async run(s, a) {
    const { options, ref, patterns } = parseList(s, a);
    if (patterns.length === 1 && patterns[0] === '' && !options.subscribedOnly) {
      // The hierarchy delimiter and root (RFC 9051 6.3.9).
      s.hold('* LIST (\\Noselect) "/" ""\r\n');
      return ok('LIST completed');
    }
    const matchers: MailboxMatcher[] = patterns.map((p) => compilePattern(p.startsWith('/') || ref === '' ? p : ref.endsWith('/') ? ref + p : `${ref}/${p}`.replace(/^\/+/, '')));
    const matches = (n: string): boolean => matchers.some((m) => m(n));
    const account = s.account!.address;
    const boxes = s.store.listMailboxes(account);
    const byName = new Map<string, MailboxInfo>(boxes.map((b) => [b.name, b]));
    const names = new Set(byName.keys());
    const subscribed = new Set(s.store.listSubscriptions(account));
    const wantSubscribed = options.subscribedOnly || options.returnSubscribed;
    const candidates = new Set<string>(options.subscribedOnly ? subscribed : names);
    if (options.subscribedOnly && options.recursiveMatch) {
      // Parents of subscribed mailboxes match too, flagged with CHILDINFO (RFC 5258 3.5).
      for (const n of subscribed) {
        const parts = n.split('/');
        for (let i = 1; i < parts.length; i++) candidates.add(parts.slice(0, i).join('/'));
      }
    }
    const sorted = [...candidates].sort((x, y) => (x === 'INBOX' ? -1 : y === 'INBOX' ? 1 : x < y ? -1 : x > y ? 1 : 0));
    for (const name of sorted) {
      if (!matches(name)) continue;
      const mb = byName.get(name);
      if (options.specialUseOnly && !mb?.specialUse) continue;
      const isSub = subscribed.has(name);
      if (options.subscribedOnly && !isSub && !options.recursiveMatch) continue;
      const attrs: string[] = [];
      if (!mb) attrs.push('\\NonExistent');
      else attrs.push(hasChildren(name, names) ? '\\HasChildren' : '\\HasNoChildren');
      if (wantSubscribed && isSub) attrs.push('\\Subscribed');
      if (mb?.specialUse) attrs.push(mb.specialUse);
      let extra = '';
      if (options.subscribedOnly && options.recursiveMatch && !isSub) {
        if (![...subscribed].some((x) => x.startsWith(`${name}/`))) continue;
        extra = '("CHILDINFO" ("SUBSCRIBED"))';
      }
      await listLine(s, 'LIST', attrs, name, extra);
      if (options.returnStatus && mb) await writeStatus(s, mb, options.returnStatus);
    }
    return ok('LIST completed');
  },
};

export const lsub: CommandHandler = {
  name: 'LSUB',
  states: ['auth', 'selected'],
  async run(s, a) {
    const ref = patternText(s, a.any('reference name'));
    const pattern = patternText(s, a.any('mailbox pattern'));
    a.end();
    if (ref.length + pattern.length > MAX_PATTERN_CHARS) throw new ImapSyntaxError('Pattern too long', 'LIMIT');
    const match = compilePattern(ref === '' || pattern.startsWith('/') ? pattern : ref.endsWith('/') ? ref + pattern : `${ref}/${pattern}`);
    const account = s.account!.address;
    const names = new Set(s.store.listMailboxes(account).map((b) => b.name));
    for (const name of [...s.store.listSubscriptions(account)].sort()) {
      if (!match(name)) continue;
      await listLine(s, 'LSUB', names.has(name) ? [] : ['\\Noselect'], name);
    }
    return ok('LSUB completed');
  },
};
