// Orders a certificate with acme-client over HTTP-01: the key authorization goes to
// `<stateDir>/acme-challenge/<token>`, which the port-80 listener (web/acme-challenge.ts) serves to the CA.
// The ACME account key lives in the state dir (0600) so renewals reuse one account.
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import acme from 'acme-client';
import { acmeChallengeDir, isValidAcmeToken } from '../web/acme-challenge.ts';
import { writeFileAtomically } from './atomic-write.ts';

export const ACME_ACCOUNT_KEY_FILENAME = 'acme-account-key.pem';
/** No single HTTP request to the CA may hang the job. */
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_KEY_BYTES = 64 * 1024;

export interface OrderRequest {
  directoryUrl: string;
  email: string;
  names: readonly string[];
  stateDir: string;
  /** Extra PEM CA trusted for the directory's HTTPS (added to the public roots). */
  directoryCaPem?: string;
}

export interface IssuedCertificate {
  keyPem: string;
  /** Leaf first, then intermediates, as the CA sent them. */
  chainPem: string;
}

async function accountKey(stateDir: string): Promise<Buffer> {
  const file = join(stateDir, ACME_ACCOUNT_KEY_FILENAME);
  try {
    const key = await readFile(file);
    if (key.length === 0 || key.length > MAX_KEY_BYTES) throw new Error(`ACME account key ${file} is empty or too large; move it away to start a new account`);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = await acme.crypto.createPrivateKey();
  await writeFileAtomically(file, key, 0o600);
  return key;
}

export async function orderCertificate(req: OrderRequest): Promise<IssuedCertificate> {
  // acme-client talks through its own axios instance; these defaults only concern requests to the CA.
  acme.axios.defaults.timeout = REQUEST_TIMEOUT_MS;
  acme.axios.defaults.httpsAgent = new https.Agent({ ca: req.directoryCaPem ? [...rootCertificates, req.directoryCaPem] : [...rootCertificates] });
  const client = new acme.Client({ directoryUrl: req.directoryUrl, accountKey: await accountKey(req.stateDir) });
  const challengeDir = acmeChallengeDir(req.stateDir);
  await mkdir(challengeDir, { recursive: true, mode: 0o755 });
  const tokenFile = (token: string): string => {
    // The token comes from the CA over the network: it must be a plain base64url name before it names a file.
    if (!isValidAcmeToken(token)) throw new Error(`the CA sent an invalid HTTP-01 token ${JSON.stringify(token.slice(0, 80))}`);
    return join(challengeDir, token);
  };
  const [key, csr] = await acme.crypto.createCsr({ commonName: req.names[0]!, altNames: [...req.names] });
  const chain = await client.auto({
    csr,
    email: req.email,
    termsOfServiceAgreed: true,
    challengePriority: ['http-01'],
    // The CA's own validation is what counts; acme-client's pre-check would dial port 80 through public DNS.
    skipChallengeVerification: true,
    challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
      if (challenge.type !== 'http-01') throw new Error(`unexpected challenge type ${challenge.type}`);
      await writeFileAtomically(tokenFile(challenge.token), keyAuthorization, 0o644);
    },
    challengeRemoveFn: async (_authz, challenge) => {
      if (challenge.type === 'http-01') await rm(tokenFile(challenge.token), { force: true });
    },
  });
  return { keyPem: key.toString(), chainPem: chain };
}
