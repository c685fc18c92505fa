// Runs one `postern` CLI command (src/cli/main.ts under this Node) to completion, as a user would from a shell.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.ts');
/** Output beyond this is a runaway command, not something a test should buffer. */
const OUTPUT_LIMIT = 16 * 1024 * 1024;

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Resolves once the process has exited and both output streams are drained. */
export function runPosternCli(args: string[], opts: { cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const overflow = () => { child.kill('SIGKILL'); reject(new Error(`postern ${args.join(' ')}: more than ${OUTPUT_LIMIT} bytes of output`)); };
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; if (stdout.length > OUTPUT_LIMIT) overflow(); });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; if (stderr.length > OUTPUT_LIMIT) overflow(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
