// ID (RFC 2971): the client's identification is logged (bounded); the server names itself.
import type { CommandHandler } from '../session.ts';
import { ok } from '../session.ts';
import { valueText } from '../args.ts';
import { ImapSyntaxError } from '../tokens.ts';

const MAX_FIELDS = 30;

export const id: CommandHandler = {
  name: 'ID',
  states: ['notauth', 'auth', 'selected'],
  async run(s, a) {
    const v = a.any('ID parameters');
    a.end();
    const client: Record<string, string | null> = {};
    if (v.type === 'list') {
      if (v.value.length % 2 !== 0 || v.value.length > MAX_FIELDS * 2) throw new ImapSyntaxError('ID takes up to 30 field/value pairs');
      for (let i = 0; i < v.value.length; i += 2) {
        const key = valueText(v.value[i]!, 'ID field').slice(0, 30);
        const val = v.value[i + 1]!;
        client[key] = val.type === 'atom' && val.value.toUpperCase() === 'NIL' ? null : valueText(val, 'ID value').slice(0, 1024);
      }
    } else if (!(v.type === 'atom' && v.value.toUpperCase() === 'NIL')) {
      throw new ImapSyntaxError('ID takes a list or NIL');
    }
    s.log.debug({ client }, 'imap client id');
    s.hold('* ID ("name" "Postern" "vendor" "Postern")\r\n');
    return ok('ID completed');
  },
};
