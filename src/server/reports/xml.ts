// XML for reports, parsed without any entity or DOCTYPE processing: a report that declares a DTD or entities is
// refused outright (billion-laughs and external-entity attacks never reach the parser). Parser: fast-xml-parser 5
// with processEntities off; only the five predefined entities and character references are decoded, by hand.
import { XMLParser } from 'fast-xml-parser';
import { ReportRefused } from './limits.ts';

const parser = new XMLParser({
  processEntities: false,
  htmlEntities: false,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  maxNestedTags: 32,
});

export function parseReportXml(text: string, maxBytes: number): unknown {
  if (Buffer.byteLength(text) > maxBytes) throw new ReportRefused(`XML report larger than ${maxBytes} bytes`);
  if (/<!DOCTYPE/i.test(text) || /<!ENTITY/i.test(text)) throw new ReportRefused('XML report declares a DOCTYPE or entities (refused: entity expansion is never performed)');
  try {
    return parser.parse(text, true);
  } catch (err) {
    throw new ReportRefused(`XML report is malformed: ${(err as Error).message.split('\n')[0]}`);
  }
}

const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Decodes the predefined XML entities and numeric character references; anything else stays as written. */
export function decodeXmlText(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (all, ref: string) => {
    if (ref.startsWith('#x')) return safeCodePoint(parseInt(ref.slice(2), 16)) ?? all;
    if (ref.startsWith('#')) return safeCodePoint(parseInt(ref.slice(1), 10)) ?? all;
    return PREDEFINED[ref] ?? all;
  });
}

function safeCodePoint(n: number): string | undefined {
  return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : undefined;
}
