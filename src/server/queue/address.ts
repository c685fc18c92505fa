// Envelope address checks shared by the spool and the outbound client: an address that reaches the queue names a
// DNS domain we will look up and is written into SMTP commands, so it must be plain and bounded.

const MAX_ADDRESS = 320;

/** The domain part, lower-cased; throws for a malformed address. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 1 || at === address.length - 1) throw new Error(`not an address: ${JSON.stringify(address.slice(0, 80))}`);
  return address.slice(at + 1).toLowerCase();
}

/** Returns a reason when `address` cannot be used in an envelope, null when it can. Empty = null sender. */
export function envelopeAddressProblem(address: string, allowEmpty: boolean): string | null {
  if (address === '') return allowEmpty ? null : 'empty address';
  if (address.length > MAX_ADDRESS) return 'address longer than 320 characters';
  // Control characters, spaces and angle brackets would break the SMTP command line we write it into.
  if (/[\x00-\x20\x7f<>]/.test(address)) return 'address contains spaces, control characters or angle brackets';
  const at = address.lastIndexOf('@');
  if (at < 1 || at === address.length - 1) return 'address needs a local part and a domain';
  const domain = address.slice(at + 1);
  if (domain.startsWith('[')) return null; // address literal; the outbound client refuses it later
  if (domain.length > 253 || !/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?)*\.?$/.test(domain.replace(/[^\x00-\x7f]/g, 'a'))) {
    return 'malformed domain';
  }
  return null;
}

export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
