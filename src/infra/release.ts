// The release: what a host runs. The server bundle from `npm run build` (dist/), the rendered config, the
// certificate and key, the DKIM private keys and the systemd unit, packed as a gzipped tar with fixed
// timestamps and owners so that the same inputs give the same bytes. The release id is a hash of the
// contents: an unchanged release is a no-op deploy.
//
// The pinned Node 24 binary (~120 MB) is not inside the tarball: the release carries a `node` symlink to
// `../../runtimes/<sha256>/node`, and the deployer uploads that runtime only when the host lacks it. The
// runtime's hash is part of the symlink, so a new Node still makes a new release id.
//
// Functions here are captured by the deploy provider's serialiser: they import what they need themselves.

export type ReleaseEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; content: Buffer; secret: boolean }
  | { type: 'symlink'; path: string; target: string };

export interface ReleaseFile {
  /** Relative path inside the release, e.g. `config/server.json`. */
  path: string;
  content: string;
  /** Secrets are written 0600 and owned by the service user on the host. */
  secret: boolean;
}

export interface ReleaseSources {
  /** Output of `npm run build` (must hold server.js). */
  bundleDir: string;
  /** The pinned Node binary, node_modules/node/bin/node. */
  nodeBinary: string;
  files: ReleaseFile[];
}

export interface Release {
  id: string;
  runtimeSha256: string;
  entries: ReleaseEntry[];
}

const MAX_BUNDLE_FILES = 5000;
const MAX_BUNDLE_BYTES = 200 * 1024 * 1024;

/** A relative path with no `..`, no absolute start, only safe characters: it names a file on the host. */
export function checkReleasePath(path: string): string {
  if (!/^[A-Za-z0-9._@+-]+(\/[A-Za-z0-9._@+-]+)*$/.test(path) || path.split('/').some((p) => p === '.' || p === '..')) {
    throw new Error(`release path ${JSON.stringify(path)}: expected a relative path of letters, digits, . _ @ + - separated by /`);
  }
  if (Buffer.byteLength(path) > 250) throw new Error(`release path ${JSON.stringify(path)}: longer than 250 bytes`);
  return path;
}

/**
 * sha256 hex of a file, streamed. Remembered per process by (path, inode, size, mtime): one `up` hashes the
 * 120 MB runtime in the program and again in the provider. The cache hangs off globalThis because this
 * function is serialised into the provider, where a captured Map would not survive.
 */
export async function sha256File(file: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  const { createReadStream } = await import('node:fs');
  const { stat } = await import('node:fs/promises');
  const st = await stat(file);
  const key = `${file}\0${st.ino}\0${st.size}\0${st.mtimeMs}`;
  const g = globalThis as { __posternSha256Cache?: Map<string, string> };
  const cache = (g.__posternSha256Cache ??= new Map());
  const known = cache.get(key);
  if (known) return known;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  const hex = hash.digest('hex');
  cache.set(key, hex);
  return hex;
}

async function bundleEntries(bundleDir: string): Promise<ReleaseEntry[]> {
  const fs = await import('node:fs/promises');
  const { join, relative } = await import('node:path');
  const server = join(bundleDir, 'server.js');
  const st = await fs.stat(server).catch(() => undefined);
  if (!st?.isFile()) throw new Error(`${server} not found: run \`npm run build\` before \`pulumi up\``);
  const entries: ReleaseEntry[] = [{ type: 'dir', path: 'server', mode: 0o755 }];
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    const names = (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const d of names) {
      const full = join(dir, d.name);
      const rel = `server/${relative(bundleDir, full).split('\\').join('/')}`;
      if (d.isDirectory()) {
        entries.push({ type: 'dir', path: checkReleasePath(rel), mode: 0o755 });
        await walk(full);
      } else if (d.isFile()) {
        // Source maps are 60% of the bundle and unused on the host (the unit runs without --enable-source-maps).
        if (d.name.endsWith('.map')) continue;
        const content = await fs.readFile(full);
        bytes += content.length;
        if (entries.length > MAX_BUNDLE_FILES || bytes > MAX_BUNDLE_BYTES) throw new Error(`${bundleDir}: more than ${MAX_BUNDLE_FILES} files or ${MAX_BUNDLE_BYTES} bytes`);
        const mode = ((await fs.stat(full)).mode & 0o111) ? 0o755 : 0o644;
        entries.push({ type: 'file', path: checkReleasePath(rel), mode, content, secret: false });
      }
      // Symlinks and other types in dist/ are not shipped: a release holds only what the build wrote.
    }
  };
  await walk(bundleDir);
  return entries;
}

/** Reads the bundle, hashes the runtime and computes the release id. */
export async function assembleRelease(src: ReleaseSources): Promise<Release> {
  const { createHash } = await import('node:crypto');
  const runtimeSha256 = await sha256File(src.nodeBinary);
  const entries = await bundleEntries(src.bundleDir);
  entries.push({ type: 'symlink', path: 'node', target: `../../runtimes/${runtimeSha256}/node` });
  const dirs = new Set<string>();
  for (const f of src.files) {
    checkReleasePath(f.path);
    if (f.path === 'node' || f.path.startsWith('server/')) throw new Error(`release path ${f.path} is reserved`);
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) { dirs.add(d); entries.push({ type: 'dir', path: d, mode: 0o755 }); }
    }
    entries.push({ type: 'file', path: f.path, mode: f.secret ? 0o600 : 0o644, content: Buffer.from(f.content), secret: f.secret });
  }
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.path)) throw new Error(`release path ${e.path} appears twice`);
    seen.add(e.path);
  }
  const hash = createHash('sha256');
  for (const e of entries) {
    const what = e.type === 'file' ? createHash('sha256').update(e.content).digest('hex') : e.type === 'symlink' ? e.target : '';
    hash.update(`${e.type} ${e.type === 'symlink' ? 777 : e.mode.toString(8)} ${e.path} ${what}\n`);
  }
  return { id: hash.digest('hex').slice(0, 24), runtimeSha256, entries };
}

/** One ustar header block. Long paths use the 155-byte prefix field. */
function tarHeader(path: string, type: '0' | '2' | '5', mode: number, size: number, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = path.lastIndexOf('/', path.length - 1);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
    if (cut < 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`path too long for a tar entry: ${path}`);
  }
  const put = (s: string, off: number, len: number) => h.write(s, off, len, 'utf8');
  // Octal digits filling the field but its last byte, which is the NUL terminator.
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, '0');
  put(name, 0, 100);
  put(`${octal(mode, 8)}\0`, 100, 8);
  put(`${octal(0, 8)}\0`, 108, 8); // uid root; the host re-owns files after unpacking
  put(`${octal(0, 8)}\0`, 116, 8);
  put(`${octal(size, 12)}\0`, 124, 12);
  put(`${octal(0, 12)}\0`, 136, 12); // mtime 0: same content, same bytes
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  put(type, 156, 1);
  put(linkname, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** The release as a gzipped ustar archive; same release, same bytes. */
export async function releaseTarball(release: Release): Promise<Buffer> {
  const { gzipSync } = await import('node:zlib');
  const blocks: Buffer[] = [];
  for (const e of release.entries) {
    if (e.type === 'dir') blocks.push(tarHeader(e.path, '5', e.mode, 0));
    else if (e.type === 'symlink') blocks.push(tarHeader(e.path, '2', 0o777, 0, e.target));
    else {
      blocks.push(tarHeader(e.path, '0', e.mode, e.content.length), e.content);
      const pad = (512 - (e.content.length % 512)) % 512;
      if (pad) blocks.push(Buffer.alloc(pad));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks), { level: 6 });
}

/** Paths of the secret files, for the host to re-own after unpacking. */
export function secretPaths(release: Release): string[] {
  return release.entries.filter((e) => e.type === 'file' && e.secret).map((e) => e.path);
}
