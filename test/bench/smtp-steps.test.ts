// The SMTP step timer of `bench/smtp.ts --steps`: per-step server latencies read from packet captures, one
// written here byte by byte (link types, stamps, IPv6, a message that looks like a command) and one taken by
// Debian's tcpdump of a real session (Python's smtplib against a scripted server that delays known replies).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { captureLoopback, readPcap, smtpStepLatencies } from '../../bench/support/smtp-steps.ts';
import { ensureDebianPackages } from '../support/debian.ts';

ensureDebianPackages(['tcpdump', 'python3']);

interface Packet { t: number; from: number; to: number; flags: number; data?: string }

/** A pcap file (Linux cooked v2, nanosecond stamps, IPv6) of `packets`; `t` in milliseconds. */
function pcapV6(packets: Packet[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b23c4d, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(276, 20);
  const records = packets.map((p) => {
    const payload = Buffer.from(p.data ?? '', 'latin1');
    const tcp = Buffer.alloc(20);
    tcp.writeUInt16BE(p.from, 0);
    tcp.writeUInt16BE(p.to, 2);
    tcp[12] = 5 << 4;
    tcp[13] = p.flags;
    const ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(tcp.length + payload.length, 4);
    ip[6] = 6;
    const link = Buffer.alloc(20);
    link.writeUInt16BE(0x86dd, 0);
    const frame = Buffer.concat([link, ip, tcp, payload]);
    const rec = Buffer.alloc(16);
    const ns = Math.round(p.t * 1e6);
    rec.writeUInt32LE(1_800_000_000 + Math.floor(ns / 1e9), 0);
    rec.writeUInt32LE(ns % 1e9, 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    return Buffer.concat([rec, frame]);
  });
  return Buffer.concat([header, ...records]);
}

const SYN = 0x02;
const SYNACK = 0x12;
const ACK = 0x10;
const PSH = 0x18;

const rounded = (v: number[]) => v.map((x) => Math.round(x * 1000) / 1000);

describe('SMTP step latencies from a packet capture', () => {
  it('times each step from the client\'s last segment to the reply and the client from a reply to its next segment, a command split over segments and a message that looks like a command included', () => {
    const c = 40000;
    const s = 25;
    const file = pcapV6([
      { t: 0, from: c, to: s, flags: SYN },
      { t: 0.01, from: s, to: c, flags: SYNACK },
      { t: 0.4, from: s, to: c, flags: PSH, data: '220 mx ESMTP\r\n' },
      { t: 1, from: c, to: s, flags: PSH, data: 'EHLO client\r\n' },
      { t: 1.05, from: s, to: c, flags: ACK },
      { t: 1.2, from: s, to: c, flags: PSH, data: '250-mx\r\n' },
      { t: 1.21, from: s, to: c, flags: PSH, data: '250 SIZE\r\n' },
      { t: 2, from: c, to: s, flags: PSH, data: 'NOOP\r\n' },
      { t: 2.1, from: s, to: c, flags: PSH, data: '250 ok\r\n' },
      { t: 3, from: c, to: s, flags: PSH, data: 'MAIL FROM:<a@b>\r\n' },
      { t: 3.3, from: s, to: c, flags: PSH, data: '250 ok\r\n' },
      { t: 3.6, from: c, to: s, flags: PSH, data: 'RCPT TO:<x' },
      { t: 4, from: c, to: s, flags: PSH, data: '@y>\r\n' },
      { t: 4.5, from: s, to: c, flags: PSH, data: '250 ok\r\n' },
      { t: 5, from: c, to: s, flags: PSH, data: 'DATA\r\n' },
      { t: 5.2, from: s, to: c, flags: PSH, data: '354 go\r\n' },
      { t: 6, from: c, to: s, flags: PSH, data: 'MAIL is what this message is about\r\n' },
      { t: 7, from: c, to: s, flags: PSH, data: 'more\r\n.\r\n' },
      { t: 9, from: s, to: c, flags: PSH, data: '250 queued\r\n' },
      { t: 10, from: c, to: s, flags: PSH, data: 'DATA\r\n' },
      { t: 10.1, from: s, to: c, flags: PSH, data: '503 no recipients\r\n' },
      { t: 11, from: c, to: s, flags: PSH, data: 'QUIT\r\n' },
      { t: 11.25, from: s, to: c, flags: PSH, data: '221 bye\r\n' },
      // Another connection and other ports: only the first is the server's.
      { t: 20, from: 7, to: 8, flags: PSH, data: 'MAIL x\r\n' },
      { t: 21, from: c + 1, to: s, flags: SYN },
      { t: 21.7, from: s, to: c + 1, flags: PSH, data: '220 mx\r\n' },
    ]);
    const segments = readPcap(file);
    assert.equal(segments.length, 26);
    assert.equal(segments[2]!.payload.toString(), '220 mx ESMTP\r\n');
    const steps = smtpStepLatencies(segments, s);
    assert.deepEqual(Object.fromEntries([...steps].map(([k, v]) => [k, rounded(v)])), {
      greeting: [0.4, 0.7], EHLO: [0.2], MAIL: [0.3], RCPT: [0.5], DATA: [0.2, 0.1], message: [2], QUIT: [0.25],
      client: [0.6, 0.79, 0.9, 0.3, 0.5, 0.8, 1, 0.9],
    });
  });

  it('refuses what is not a pcap file, and a link type it cannot read', () => {
    assert.throws(() => readPcap(Buffer.alloc(10)), /shorter than its header/);
    assert.throws(() => readPcap(Buffer.alloc(24)), /bad magic/);
    const odd = pcapV6([]);
    odd.writeUInt32LE(105, 20);
    assert.throws(() => readPcap(odd), /link type 105/);
  });

  it('reads a real tcpdump capture of an smtplib session, steps delayed by the server showing as their delay', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-steps-'));
    const sockets = new Set<Socket>();
    // Replies after a known pause: at least that long is what the capture must show for the step.
    const pause: Record<string, number> = { EHLO: 0, MAIL: 0, RCPT: 30, DATA: 0, message: 60, QUIT: 0 };
    const server = createServer((sock) => {
      sockets.add(sock);
      let inMessage = false;
      let buf = '';
      const send = (ms: number, line: string) => setTimeout(() => sock.write(line), ms);
      sock.write('220 test ESMTP\r\n');
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (;;) {
          if (inMessage) {
            const end = buf.indexOf('\r\n.\r\n');
            if (end < 0) return;
            buf = buf.slice(end + 5);
            inMessage = false;
            send(pause.message!, '250 queued\r\n');
            continue;
          }
          const nl = buf.indexOf('\r\n');
          if (nl < 0) return;
          const verb = buf.slice(0, 4).toUpperCase();
          buf = buf.slice(nl + 2);
          if (verb === 'EHLO') send(pause.EHLO!, '250-test\r\n250 8BITMIME\r\n');
          else if (verb === 'MAIL') send(pause.MAIL!, '250 ok\r\n');
          else if (verb === 'RCPT') send(pause.RCPT!, '250 ok\r\n');
          else if (verb === 'DATA') { inMessage = true; send(pause.DATA!, '354 go ahead\r\n'); }
          else if (verb === 'QUIT') sock.end('221 bye\r\n');
          else send(0, '502 no\r\n');
        }
      });
      sock.on('close', () => sockets.delete(sock));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const capture = await captureLoopback(join(dir, 'session.pcap'), '127.0.0.1', port);
    let segments;
    try {
      const script = `import smtplib\ns = smtplib.SMTP('127.0.0.1', ${port})\ns.ehlo('client.test')\n`
        + `s.sendmail('a@client.test', ['x@test', 'y@test'], 'Subject: hi\\r\\n\\r\\nbody\\r\\n')\ns.quit()\n`;
      await promisify(execFile)('python3', ['-c', script]);
    } finally {
      segments = await capture.stop();
      for (const s of sockets) s.destroy();
      server.close();
    }
    const steps = smtpStepLatencies(segments, port);
    await rm(dir, { recursive: true, force: true });
    const counts = Object.fromEntries([...steps].map(([k, v]) => [k, v.length]));
    assert.deepEqual(counts, { greeting: 1, EHLO: 1, MAIL: 1, RCPT: 2, DATA: 1, message: 1, QUIT: 1, client: 7 });
    for (const v of steps.get('RCPT')!) assert.ok(v >= 29, `RCPT answered after ${v} ms, the server paused 30`);
    assert.ok(steps.get('message')![0]! >= 59, `message answered after ${steps.get('message')![0]} ms, the server paused 60`);
  });
});
