// BODY[section] and BINARY[section] contents: finds a part by its number in the cached BODYSTRUCTURE and
// slices the message bytes with the part's offsets (RFC 9051 6.4.5), filters header fields, and decodes
// transfer encodings for BINARY (RFC 3516).
import type { BodyStructure, SinglePart } from '../store/types.ts';
import type { Section } from './fetch-items.ts';

function children(node: BodyStructure): BodyStructure[] | null {
  if (node.kind === 'multipart') return node.parts;
  if (node.message) {
    const inner = node.message.body;
    return inner.kind === 'multipart' ? inner.parts : [inner];
  }
  return null;
}

/** The part a section number names; null when there is no such part. */
export function findPart(top: BodyStructure, part: readonly number[]): BodyStructure | null {
  let kids: BodyStructure[] | null = top.kind === 'multipart' ? top.parts : [top];
  let node: BodyStructure | null = null;
  for (const k of part) {
    if (!kids) return null;
    node = kids[k - 1] ?? null;
    if (!node) return null;
    kids = children(node);
  }
  return node;
}

/** Header block (with its blank line) → only the fields named (or all but them), plus the blank line. */
export function filterHeader(header: Buffer, fields: readonly string[], not: boolean): Buffer {
  const want = new Set(fields.map((f) => f.toLowerCase()));
  const text = header.toString('latin1');
  const out: string[] = [];
  let current: string | null = null;
  let keep = false;
  const flush = (): void => {
    if (current !== null && keep) out.push(current);
  };
  for (const line of text.split(/(?<=\n)/)) {
    if (line === '\r\n' || line === '\n') break;
    if ((line.startsWith(' ') || line.startsWith('\t')) && current !== null) {
      current += line;
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    const name = (colon > 0 ? line.slice(0, colon) : '').trim().toLowerCase();
    keep = name !== '' && want.has(name) !== not;
    current = line;
  }
  flush();
  return Buffer.from(`${out.join('')}\r\n`, 'latin1');
}

export type SectionBytes = { ok: true; data: Buffer } | { ok: false; reason: 'nopart' | 'unknown-cte' };

/** The bytes of `section` of `message`; HEADER-only sections at the top level may pass just the header. */
export function sectionBytes(message: Buffer, body: BodyStructure, section: Section): SectionBytes {
  const header = (start: number, end: number): Buffer => message.subarray(start, end);
  if (section.part.length === 0) {
    switch (section.text) {
      case null: return { ok: true, data: message };
      case 'HEADER': return { ok: true, data: header(0, body.offsets.bodyStart) };
      case 'HEADER.FIELDS': return { ok: true, data: filterHeader(header(0, body.offsets.bodyStart), section.fields, false) };
      case 'HEADER.FIELDS.NOT': return { ok: true, data: filterHeader(header(0, body.offsets.bodyStart), section.fields, true) };
      case 'TEXT': return { ok: true, data: message.subarray(body.offsets.bodyStart) };
      default: return { ok: false, reason: 'nopart' };
    }
  }
  const node = findPart(body, section.part);
  if (!node) return { ok: false, reason: 'nopart' };
  const o = node.offsets;
  if (section.text === null) return { ok: true, data: message.subarray(o.bodyStart, o.bodyEnd) };
  if (section.text === 'MIME') return { ok: true, data: message.subarray(o.headerStart, o.bodyStart) };
  if (node.kind !== 'single' || !node.message) return { ok: false, reason: 'nopart' };
  const inner = node.message.body.offsets;
  const h = message.subarray(inner.headerStart, inner.bodyStart);
  switch (section.text) {
    case 'HEADER': return { ok: true, data: h };
    case 'HEADER.FIELDS': return { ok: true, data: filterHeader(h, section.fields, false) };
    case 'HEADER.FIELDS.NOT': return { ok: true, data: filterHeader(h, section.fields, true) };
    case 'TEXT': return { ok: true, data: message.subarray(inner.bodyStart, o.bodyEnd) };
    default: return { ok: false, reason: 'nopart' };
  }
}

function decodeQuotedPrintable(b: Buffer): Buffer {
  const out = Buffer.alloc(b.length);
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c !== 0x3d) {
      out[n++] = c;
      continue;
    }
    const h = b.subarray(i + 1, i + 3).toString('latin1');
    if (/^[0-9A-Fa-f]{2}$/.test(h)) {
      out[n++] = parseInt(h, 16);
      i += 2;
    } else if (h === '\r\n') i += 2;
    else if (h[0] === '\n') i += 1;
    else out[n++] = c;
  }
  return out.subarray(0, n);
}

/** BINARY[part]: the part's body with its Content-Transfer-Encoding undone. */
export function binaryBytes(message: Buffer, body: BodyStructure, part: readonly number[]): SectionBytes {
  if (part.length === 0) return { ok: true, data: message };
  const node = findPart(body, part);
  if (!node) return { ok: false, reason: 'nopart' };
  const raw = message.subarray(node.offsets.bodyStart, node.offsets.bodyEnd);
  if (node.kind === 'multipart') return { ok: true, data: raw };
  return decodeTransfer(raw, node);
}

function decodeTransfer(raw: Buffer, node: SinglePart): SectionBytes {
  switch (node.encoding.toUpperCase()) {
    case '7BIT': case '8BIT': case 'BINARY': return { ok: true, data: raw };
    case 'BASE64': return { ok: true, data: Buffer.from(raw.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64') };
    case 'QUOTED-PRINTABLE': return { ok: true, data: decodeQuotedPrintable(raw) };
    default: return { ok: false, reason: 'unknown-cte' };
  }
}
