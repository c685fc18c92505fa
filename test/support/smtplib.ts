// Python's smtplib as a client in tests: runs a list of steps in one session and returns every reply, so a test
// can see a refusal and what the same session does next.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export type SmtplibStep =
  | ['ehlo']
  | ['mail', string, string[]]
  | ['rcpt', string, string[]]
  | ['data', string]
  | ['rset'];

export interface SmtplibReply { code: number; text: string }

const SCRIPT = String.raw`
import json, smtplib, ssl, sys
port, login, steps = int(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.example.net', timeout=20)
out = []
s.ehlo()
if login:
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx); s.ehlo(); s.login(login[0], login[1])
for step in steps:
    if step[0] == 'ehlo': r = s.ehlo(); r = (r[0], r[1])
    elif step[0] == 'mail': r = s.mail(step[1], step[2])
    elif step[0] == 'rcpt': r = s.rcpt(step[1], step[2])
    elif step[0] == 'data': r = s.data(step[1].encode())
    elif step[0] == 'rset': r = s.rset()
    out.append({'code': r[0], 'text': r[1].decode('latin1')})
s.quit()
print(json.dumps(out))
`;

/** Runs `steps` on the SMTP port; `login` = [user, password] does STARTTLS and AUTH first (submission). */
export async function smtplibSession(port: number, steps: SmtplibStep[], login?: [string, string]): Promise<SmtplibReply[]> {
  const { stdout } = await promisify(execFile)('python3', ['-c', SCRIPT, String(port), JSON.stringify(login ?? null), JSON.stringify(steps)], { timeout: 30_000 });
  return JSON.parse(stdout) as SmtplibReply[];
}
