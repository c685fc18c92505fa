// Runs `postern serve` as a child process through bin/postern.js (or a built bundle) and reads the listener
// URLs it prints, so tests talk to exactly what a user would run.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const POSTERN_BIN = join(REPO_ROOT, 'bin', 'postern.js');

export interface PosternProcess {
  child: ChildProcess;
  /** Listener URLs by scheme, as printed. */
  urls: Map<string, string>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** SIGKILLs the process if still running. */
  kill(): Promise<void>;
}

/** Starts `node <script> <args>` and waits for its listener lines (the line after the last URL ends the banner). */
export async function startPostern(args: string[], opts: { script?: string; cwd?: string; timeoutMs?: number } = {}): Promise<PosternProcess> {
  const child = spawn(process.execPath, [opts.script ?? POSTERN_BIN, ...args], {
    cwd: opts.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' },
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  const urls = new Map<string, string>();
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  // The banner ends with a "ready" line once every listener is bound.
  while (!/^ready /m.test(out)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postern exited early (${child.exitCode ?? child.signalCode}):\n${out}\n${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`postern did not start:\n${out}\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const m of out.matchAll(/^\s+(\w+)\s+(\w+:\/\/\S+)$/gm)) urls.set(m[1]!, m[2]!);
  return {
    child, urls, exited,
    stdout: () => out,
    stderr: () => err,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Runs a command to completion and returns its exit code and output. */
export async function runPostern(args: string[], opts: { script?: string; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [opts.script ?? POSTERN_BIN, ...args], { cwd: opts.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  // A command that should end by itself but hangs is killed, so the test fails instead of stalling the suite.
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = await once(child, 'exit') as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}
