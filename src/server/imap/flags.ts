// Flag lists in APPEND and STORE: system flags in their canonical spelling, keywords as atoms.
import { SYSTEM_FLAGS } from '../store/types.ts';
import { ImapSyntaxError, type Value } from './tokens.ts';

const MAX_FLAGS = 100;
const KEYWORD = /^[\x21\x23-\x24\x26-\x27\x2b-\x5a\x5e-\x7a\x7c\x7e]{1,100}$/; // ATOM-CHAR minus "]" and "\"

export function parseFlags(values: readonly Value[]): string[] {
  if (values.length > MAX_FLAGS) throw new ImapSyntaxError('Too many flags', 'LIMIT');
  const out: string[] = [];
  for (const v of values) {
    if (v.type !== 'atom' || v.section) throw new ImapSyntaxError('Flags are atoms');
    let flag = v.value;
    if (flag.startsWith('\\')) {
      const sys = SYSTEM_FLAGS.find((f) => f.toLowerCase() === flag.toLowerCase());
      if (!sys) {
        if (flag.toLowerCase() === '\\recent') throw new ImapSyntaxError('\\Recent cannot be set');
        throw new ImapSyntaxError(`Unknown system flag ${flag.slice(0, 30)}`);
      }
      flag = sys;
    } else if (!KEYWORD.test(flag)) {
      throw new ImapSyntaxError(`Invalid keyword ${flag.slice(0, 30)}`);
    }
    if (!out.some((f) => f.toLowerCase() === flag.toLowerCase())) out.push(flag);
  }
  return out;
}
