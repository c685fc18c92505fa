// Where an SMTP server spends a message's time, step by step, from a packet capture of its loopback port: for
// every client command (and the message after DATA's 354), the time from the client's last segment of it to the
// first segment of the server's reply; for every connection, the time from the client's SYN to the greeting.
// A capture slows neither side, unlike tracing the client's system calls.
// Reads classic pcap files (microsecond or nanosecond stamps) of link type Ethernet (tcpdump -i lo), Linux
// cooked v1 or v2 (tcpdump -i any); IPv4 and IPv6 over TCP.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface Segment {
  /** Seconds since the epoch. */
  time: number;
  srcPort: number;
  dstPort: number;
  syn: boolean;
  ack: boolean;
  payload: Buffer;
}

const LINK_HEADER: Record<number, { length: number; typeAt: number }> = {
  1: { length: 14, typeAt: 12 }, // Ethernet
  113: { length: 16, typeAt: 14 }, // Linux cooked v1
  276: { length: 20, typeAt: 0 }, // Linux cooked v2
};

/** The TCP segments of a pcap file, in capture order; other packets are skipped. */
export function readPcap(file: Buffer): Segment[] {
  if (file.length < 24) throw new Error('not a pcap file: shorter than its header');
  // The magic, read in the writer's byte order: microsecond or nanosecond stamps.
  const MICRO = 0xa1b2c3d4;
  const NANO = 0xa1b23c4d;
  const le = [MICRO, NANO].includes(file.readUInt32LE(0));
  const u32 = (at: number) => (le ? file.readUInt32LE(at) : file.readUInt32BE(at));
  if (![MICRO, NANO].includes(u32(0))) throw new Error('not a pcap file: bad magic');
  const nano = u32(0) === NANO;
  const linkType = u32(20) & 0xffff;
  const link = LINK_HEADER[linkType];
  if (!link) throw new Error(`pcap link type ${linkType} is not supported (Ethernet, Linux cooked v1/v2 are)`);
  const out: Segment[] = [];
  for (let at = 24; at + 16 <= file.length;) {
    const time = u32(at) + u32(at + 4) / (nano ? 1e9 : 1e6);
    const captured = u32(at + 8);
    const packet = file.subarray(at + 16, at + 16 + captured);
    at += 16 + captured;
    if (packet.length < link.length) continue;
    const etherType = packet.readUInt16BE(link.typeAt);
    const ip = packet.subarray(link.length);
    // The TCP segment: up to the IP length (Ethernet pads short frames), or what the capture kept of it.
    let tcp: Buffer;
    if (etherType === 0x0800 && ip.length >= 20 && ip[9] === 6) {
      tcp = ip.subarray((ip[0]! & 0x0f) * 4, ip.readUInt16BE(2));
    } else if (etherType === 0x86dd && ip.length >= 40 && ip[6] === 6) {
      tcp = ip.subarray(40, 40 + ip.readUInt16BE(4));
    } else {
      continue;
    }
    if (tcp.length < 20) continue;
    const flags = tcp[13]!;
    out.push({
      time, srcPort: tcp.readUInt16BE(0), dstPort: tcp.readUInt16BE(2), syn: (flags & 0x02) !== 0, ack: (flags & 0x10) !== 0,
      payload: tcp.subarray((tcp[12]! >> 4) * 4),
    });
  }
  return out;
}

/**
 * The steps reported, in SMTP order. `message` is the client's message after the 354, up to the final reply.
 * `client` is the other side of the exchange: from the server's last segment of a reply to the client's next
 * segment, the time the client (and the machine it shares) takes between two steps.
 */
export const SMTP_STEPS = ['greeting', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'message', 'QUIT', 'client'] as const;
export type SmtpStep = typeof SMTP_STEPS[number];

const COMMANDS = new Set(['EHLO', 'HELO', 'MAIL', 'RCPT', 'DATA', 'QUIT']);

interface Connection {
  synAt?: number;
  step?: SmtpStep;
  /** The client's last segment of the current step. */
  lastClientAt?: number;
  /** The server's last segment since the client's. */
  lastServerAt?: number;
  inMessage: boolean;
}

/**
 * Server latency per step, in milliseconds, for every connection to `serverPort` in `segments`. A capture that
 * keeps only the first bytes of each segment (tcpdump -s) is enough: commands are told by their first four.
 */
export function smtpStepLatencies(segments: readonly Segment[], serverPort: number): Map<SmtpStep, number[]> {
  const out = new Map<SmtpStep, number[]>(SMTP_STEPS.map((s) => [s, []]));
  const connections = new Map<number, Connection>();
  for (const s of segments) {
    const fromClient = s.dstPort === serverPort;
    if (!fromClient && s.srcPort !== serverPort) continue;
    const clientPort = fromClient ? s.srcPort : s.dstPort;
    if (fromClient && s.syn && !s.ack) {
      connections.set(clientPort, { synAt: s.time, inMessage: false });
      continue;
    }
    const c = connections.get(clientPort);
    if (!c || s.payload.length === 0) continue;
    if (fromClient) {
      if (c.lastServerAt !== undefined) {
        out.get('client')!.push((s.time - c.lastServerAt) * 1000);
        c.lastServerAt = undefined;
      }
      if (c.step === undefined) {
        if (c.inMessage) {
          c.step = 'message';
        } else {
          const verb = s.payload.toString('latin1', 0, 4).toUpperCase();
          if (!COMMANDS.has(verb)) continue; // not counted (RSET, NOOP, STARTTLS…)
          c.step = verb === 'HELO' ? 'EHLO' : verb as SmtpStep;
        }
      }
      c.lastClientAt = s.time;
    } else {
      c.lastServerAt = s.time;
      if (c.synAt !== undefined) {
        out.get('greeting')!.push((s.time - c.synAt) * 1000);
        c.synAt = undefined;
      } else if (c.step !== undefined && c.lastClientAt !== undefined) {
        out.get(c.step)!.push((s.time - c.lastClientAt) * 1000);
        c.inMessage = c.step === 'DATA' && s.payload.toString('latin1', 0, 3) === '354';
        c.step = undefined;
        c.lastClientAt = undefined;
      }
    }
  }
  return out;
}

/**
 * Starts Debian's tcpdump on the loopback interface for TCP to or from `host`:`port`, resolved once it captures.
 * `stop()` ends it and returns the segments. Immediate mode: packets would otherwise wait in the kernel's ring
 * buffer and the last of them be lost when tcpdump stops.
 */
export async function captureLoopback(file: string, host: string, port: number): Promise<{ stop: () => Promise<Segment[]> }> {
  const dump = spawn('tcpdump', ['-i', 'lo', '--immediate-mode', '-s', '256', '-U', '-n', '-w', file, `tcp port ${port} and host ${host}`],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => dump.once('exit', resolve));
  let err = '';
  await new Promise<void>((resolve, reject) => {
    dump.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('listening on')) resolve(); });
    void exited.then((code) => reject(new Error(`tcpdump exited ${code}: ${err.trim()}`)));
  });
  return {
    async stop() {
      dump.kill('SIGINT');
      await exited;
      return readPcap(await readFile(file));
    },
  };
}
