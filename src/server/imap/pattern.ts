// LIST patterns: '*' matches anything, '%' anything but the hierarchy delimiter (RFC 9051 6.3.9). Matching is
// dynamic programming over (pattern, name) so no pattern can make it take exponential time.
import { ImapSyntaxError } from './tokens.ts';

const MAX_PATTERN = 1024;

export type MailboxMatcher = (name: string) => boolean;

export function compilePattern(pattern: string): MailboxMatcher {
  if (pattern.length > MAX_PATTERN) throw new ImapSyntaxError('Pattern too long', 'LIMIT');
  // INBOX is case-insensitive, also as the first level of a pattern.
  let p = /^inbox(?=$|\/)/i.test(pattern) ? `INBOX${pattern.slice(5)}` : pattern;
  p = p.replace(/\*+/g, '*');
  const chars = [...p];
  return (name: string): boolean => {
    const n = [...name];
    // prev[j]: does pattern[0..i) match name[0..j)?
    let prev = new Uint8Array(n.length + 1);
    prev[0] = 1;
    for (const c of chars) {
      const cur = new Uint8Array(n.length + 1);
      if (c === '*' || c === '%') {
        let reach = 0;
        for (let j = 0; j <= n.length; j++) {
          if (prev[j]) reach = 1;
          else if (c === '%' && j > 0 && n[j - 1] === '/') reach = 0;
          cur[j] = reach;
        }
      } else {
        for (let j = 1; j <= n.length; j++) cur[j] = prev[j - 1] && n[j - 1] === c ? 1 : 0;
      }
      prev = cur;
    }
    return prev[n.length] === 1;
  };
}
