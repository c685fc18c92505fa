// Validation of everything that ends up naming something on disk: account addresses and mailbox names.
// Names are checked against a whitelist and then encoded, never trusted as path pieces.
import { domainToASCII } from 'node:url';
import { MAILBOX_DELIMITER, StoreError } from './types.ts';

const LOCAL_PART = /^[a-z0-9!#$%&'*+=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+=?^_`{|}~-]+)*$/;
const DOMAIN_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const MAX_LOCAL_PART = 64;
const MAX_DOMAIN = 253;

/** Lower-case `local@a-label.domain`, or null when the address is not one Postern can host or name on disk. */
export function normalizeAddress(input: string): string | null {
  if (input.length > 320) return null;
  const at = input.lastIndexOf('@');
  if (at <= 0 || at === input.length - 1) return null;
  const local = input.slice(0, at).toLowerCase();
  const domain = normalizeDomain(input.slice(at + 1));
  if (!domain || local.length > MAX_LOCAL_PART || !LOCAL_PART.test(local)) return null;
  return `${local}@${domain}`;
}

export function normalizeDomain(input: string): string | null {
  if (input.length === 0 || input.length > MAX_DOMAIN) return null;
  const ascii = /^[\x21-\x7e]+$/.test(input) ? input.toLowerCase() : domainToASCII(input);
  if (!ascii || ascii.length > MAX_DOMAIN) return null;
  const labels = ascii.replace(/\.$/, '').split('.');
  if (labels.length < 1 || !labels.every((l) => DOMAIN_LABEL.test(l))) return null;
  return labels.join('.');
}

export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

const MAX_MAILBOX_NAME = 255;
const MAX_MAILBOX_DEPTH = 16;
const MAX_FOLDER_BYTES = 240; // one directory entry on ext4 holds 255 bytes; keep room for Maildir++ prefixes
// Control characters (C0, DEL, C1) and the LIST wildcards: a name containing them could not be listed reliably.
const FORBIDDEN = /[\x00-\x1f\x7f-\x9f%*]/;

/**
 * Canonical mailbox name: NFC, `INBOX` upper-cased (also as a parent), components non-empty, not `.`/`..`.
 * Throws StoreError('CANNOT') with the reason otherwise.
 */
export function normalizeMailboxName(input: string): string {
  if (input.length === 0) throw new StoreError('CANNOT', 'mailbox name is empty');
  if (input.length > MAX_MAILBOX_NAME) throw new StoreError('CANNOT', `mailbox name longer than ${MAX_MAILBOX_NAME} characters`);
  if (!input.isWellFormed()) throw new StoreError('CANNOT', 'mailbox name is not valid Unicode');
  const name = input.normalize('NFC');
  if (FORBIDDEN.test(name)) throw new StoreError('CANNOT', 'mailbox name contains a control character, % or *');
  const parts = name.split(MAILBOX_DELIMITER);
  if (parts.length > MAX_MAILBOX_DEPTH) throw new StoreError('CANNOT', `mailbox name nested deeper than ${MAX_MAILBOX_DEPTH} levels`);
  for (const p of parts) {
    if (p === '') throw new StoreError('CANNOT', `mailbox name has an empty level (leading, trailing or doubled "${MAILBOX_DELIMITER}")`);
    if (p === '.' || p === '..') throw new StoreError('CANNOT', 'mailbox name has a "." or ".." level');
    if (p.trim() !== p) throw new StoreError('CANNOT', 'mailbox name level starts or ends with white space');
  }
  if (parts[0]!.toUpperCase() === 'INBOX') parts[0] = 'INBOX';
  const canonical = parts.join(MAILBOX_DELIMITER);
  if (Buffer.byteLength(folderName(canonical)) > MAX_FOLDER_BYTES) throw new StoreError('CANNOT', 'mailbox name too long once encoded for disk');
  return canonical;
}

function encodeComponent(component: string): string {
  let out = '';
  for (const byte of Buffer.from(component, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_ -]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Maildir++ folder for a canonical mailbox name: '' for INBOX (the account root), else `.` + components joined by
 * `.`, each component with everything outside [A-Za-z0-9_ -] written as %XX — reversible, and never `/` or `..`.
 */
export function folderName(canonical: string): string {
  if (canonical === 'INBOX') return '';
  return '.' + canonical.split(MAILBOX_DELIMITER).map(encodeComponent).join('.');
}

/** Inverse of folderName for directories found on disk; null when the entry is not a folder name we write. */
export function mailboxNameFromFolder(folder: string): string | null {
  if (!/^\.[A-Za-z0-9_ %.-]+$/.test(folder)) return null;
  const parts = folder.slice(1).split('.');
  try {
    const names = parts.map((p) => {
      if (!/^(?:[A-Za-z0-9_ -]|%[0-9A-F]{2})+$/.test(p)) throw new Error('bad component');
      const bytes: number[] = [];
      for (let i = 0; i < p.length; i++) {
        if (p[i] === '%') { bytes.push(parseInt(p.slice(i + 1, i + 3), 16)); i += 2; } else bytes.push(p.charCodeAt(i));
      }
      return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
    });
    const name = names.join(MAILBOX_DELIMITER);
    return normalizeMailboxName(name) === name && folderName(name) === folder ? name : null;
  } catch {
    return null;
  }
}
