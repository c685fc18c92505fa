// Free ports on 127.0.0.1 for test peers, which must never take fixed ports: other tests run at the same time.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/** A TCP port the kernel just handed out on `host` and released, for peers that cannot report an ephemeral port. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A port free for both UDP and TCP on 127.0.0.1 at the time of asking (DNS servers listen on both). */
export async function freeUdpTcpPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    await new Promise<void>((res, rej) => { udp.once('error', rej); udp.bind(0, '127.0.0.1', () => res()); });
    const port = udp.address().port;
    const tcp = createServer();
    const ok = await new Promise<boolean>((res) => { tcp.once('error', () => res(false)); tcp.listen(port, '127.0.0.1', () => res(true)); });
    await new Promise<void>((res) => udp.close(() => res()));
    if (ok) { await new Promise<void>((res) => tcp.close(() => res())); return port; }
  }
  throw new Error('no free UDP+TCP port found');
}
