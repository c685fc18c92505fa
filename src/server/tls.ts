// The server's certificate and key, read from files and swapped without a restart: on SIGHUP (main.ts calls
// reload()) and when the files change on disk (renewal writes new ones). A new pair is checked before use —
// parseable, key matches certificate — and a bad one is logged and ignored, so a broken renewal never takes
// TLS down.
import { readFileSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { TlsSource } from './service.ts';

/** Certificates and keys are small; anything larger is not a PEM file we wrote. */
const MAX_PEM_BYTES = 1024 * 1024;
const DEBOUNCE_MS = 200;

export interface CertificateInfo {
  serialNumber: string;
  subject: string;
  subjectAltName: string;
  validTo: string;
  fingerprint256: string;
}

/** A TlsSource that can reload; listeners that keep a default context (non-SNI clients) subscribe to changes. */
export interface ReloadableTls extends TlsSource {
  /** Re-reads the files; returns false (and keeps the old pair) when the new one is unusable. */
  reload(): boolean;
  /** Called after every successful reload with the new PEM pair. */
  onReload(listener: (pem: { key: Buffer; cert: Buffer }) => void): void;
  info(): CertificateInfo;
  /** Stops watching the files. */
  close(): void;
}

interface Loaded {
  key: Buffer;
  cert: Buffer;
  context: SecureContext;
  info: CertificateInfo;
}

function readPem(file: string, what: string): Buffer {
  const data = readFileSync(file);
  if (data.length === 0) throw new Error(`${what} ${file} is empty`);
  if (data.length > MAX_PEM_BYTES) throw new Error(`${what} ${file} is larger than ${MAX_PEM_BYTES} bytes`);
  return data;
}

/** Reads and checks a certificate/key pair; throws with a message naming the file and the problem. */
export function loadCertificatePair(certFile: string, keyFile: string): Loaded {
  const cert = readPem(certFile, 'certificate');
  const key = readPem(keyFile, 'private key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`certificate ${certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`private key ${keyFile} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`private key ${keyFile} does not match certificate ${certFile}`);
  const context = createSecureContext({ key, cert, minVersion: 'TLSv1.2' });
  return {
    key, cert, context,
    info: {
      serialNumber: x509.serialNumber,
      subject: x509.subject,
      subjectAltName: x509.subjectAltName ?? '',
      validTo: x509.validTo,
      fingerprint256: x509.fingerprint256,
    },
  };
}

export function createTlsSource(files: { certFile: string; keyFile: string }, logger: Logger): ReloadableTls {
  const certFile = resolve(files.certFile);
  const keyFile = resolve(files.keyFile);
  let loaded = loadCertificatePair(certFile, keyFile);
  const listeners: ((pem: { key: Buffer; cert: Buffer }) => void)[] = [];
  logger.info({ cert: certFile, serial: loaded.info.serialNumber, validTo: loaded.info.validTo }, 'tls certificate loaded');

  const reload = (): boolean => {
    let next: Loaded;
    try {
      next = loadCertificatePair(certFile, keyFile);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'tls reload failed; keeping the current certificate');
      return false;
    }
    if (next.info.fingerprint256 === loaded.info.fingerprint256 && next.key.equals(loaded.key)) return true;
    loaded = next;
    logger.info({ cert: certFile, serial: next.info.serialNumber, validTo: next.info.validTo }, 'tls certificate reloaded');
    for (const l of listeners) l({ key: next.key, cert: next.cert });
    return true;
  };

  // Watch the folders rather than the files: renewals replace files by rename, which ends a file watch.
  // Several events arrive per renewal (cert, key, temp files); the debounce turns them into one reload.
  const names = new Set([basename(certFile), basename(keyFile)]);
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(certFile), dirname(keyFile)])) {
    const w = watch(dir, { persistent: false }, (_event, name) => {
      if (name !== null && !names.has(name)) return;
      clearTimeout(timer);
      timer = setTimeout(reload, DEBOUNCE_MS);
      timer.unref();
    });
    w.on('error', (err) => logger.warn({ err: err.message, dir }, 'tls file watch failed; reload with SIGHUP'));
    watchers.push(w);
  }

  return {
    current: () => loaded.context,
    pem: () => ({ key: loaded.key, cert: loaded.cert }),
    sniCallback: (_servername, cb) => cb(null, loaded.context),
    reload,
    onReload: (l) => { listeners.push(l); },
    info: () => loaded.info,
    close: () => {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}

/**
 * Keeps a TLS server's default context (used for clients that send no SNI, e.g. MTAs connecting by IP) on the
 * current certificate: `followReloads(ctx.tls, server)` after creating a `tls.Server`/`https.Server`. For
 * smtp-server pass `{ setSecureContext: (pem) => smtp.updateSecureContext(pem) }`.
 */
export function followReloads(source: TlsSource, server: { setSecureContext(options: { key: Buffer; cert: Buffer }): void }): void {
  const reloadable = source as Partial<ReloadableTls>;
  reloadable.onReload?.((pem) => server.setSecureContext(pem));
}
