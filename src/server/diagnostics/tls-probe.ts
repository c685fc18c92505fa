// Connects to a TLS service the way a client would (implicit TLS, or SMTP STARTTLS) and returns the certificate
// it presents and whether it verifies. Bounded: a deadline per connection and a cap on the plaintext read.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';

export type TlsMode = 'implicit' | 'smtp-starttls';

export interface TlsProbeTarget {
  /** Address to connect to (IP or name). */
  host: string;
  port: number;
  mode: TlsMode;
  /** The name the certificate must be valid for (SNI and verification). */
  servername: string;
  /** Trusted roots (PEM); the system's when omitted. */
  ca?: string | Buffer;
  timeoutMs?: number;
}

export interface TlsProbeResult {
  cert: PeerCertificate;
  authorized: boolean;
  authorizationError: string | null;
  protocol: string | null;
}

const MAX_REPLY_BYTES = 16 * 1024;

/** Reads one complete SMTP reply (all its continuation lines); rejects past MAX_REPLY_BYTES. */
function smtpReply(socket: Socket): Promise<{ code: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (buf.length > MAX_REPLY_BYTES) { done(); reject(new Error('SMTP reply too long')); return; }
      const lines = buf.split('\r\n');
      lines.pop();
      const last = lines[lines.length - 1];
      if (last !== undefined && /^\d{3}( |$)/.test(last)) {
        done();
        resolve({ code: Number(last.slice(0, 3)), lines });
      }
    };
    const onEnd = () => { done(); reject(new Error(`connection closed by the server${buf ? ` after ${JSON.stringify(buf.slice(0, 200))}` : ''}`)); };
    const onError = (err: Error) => { done(); reject(err); };
    const done = () => { socket.off('data', onData); socket.off('end', onEnd); socket.off('error', onError); };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
  });
}

async function smtpStarttls(socket: Socket): Promise<void> {
  const greeting = await smtpReply(socket);
  if (greeting.code !== 220) throw new Error(`SMTP greeting was ${greeting.lines.join(' | ')}`);
  socket.write('EHLO doctor.postern.invalid\r\n');
  const ehlo = await smtpReply(socket);
  if (ehlo.code !== 250) throw new Error(`EHLO answered ${ehlo.lines.join(' | ')}`);
  if (!ehlo.lines.some((l) => /^250[ -]STARTTLS\b/i.test(l))) throw new Error('the server does not offer STARTTLS');
  socket.write('STARTTLS\r\n');
  const go = await smtpReply(socket);
  if (go.code !== 220) throw new Error(`STARTTLS answered ${go.lines.join(' | ')}`);
}

export function probeTls(target: TlsProbeTarget): Promise<TlsProbeResult> {
  const timeoutMs = target.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let plain: Socket | undefined;
    let secure: TLSSocket | undefined;
    const timer = setTimeout(() => finish(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null, result?: TlsProbeResult) => {
      clearTimeout(timer);
      secure?.destroy();
      plain?.destroy();
      if (err) reject(err);
      else resolve(result!);
    };
    const handshake = (socket?: Socket) => {
      secure = tlsConnect({
        ...(socket ? { socket } : { host: target.host, port: target.port }),
        servername: target.servername,
        rejectUnauthorized: false,
        ...(target.ca ? { ca: target.ca } : {}),
      });
      secure.once('secureConnect', () => {
        const s = secure!;
        const err = s.authorizationError;
        finish(null, {
          cert: s.getPeerCertificate(true),
          authorized: s.authorized,
          authorizationError: err ? String(typeof err === 'object' && 'code' in err ? (err as { code: string }).code : err) : null,
          protocol: s.getProtocol(),
        });
      });
      secure.once('error', (e) => finish(e));
    };
    if (target.mode === 'implicit') { handshake(); return; }
    plain = netConnect({ host: target.host, port: target.port });
    plain.once('connect', () => {
      smtpStarttls(plain!).then(() => handshake(plain), (e: Error) => finish(e));
    });
    plain.once('error', (e) => finish(e));
  });
}
