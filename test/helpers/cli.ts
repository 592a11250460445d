// Runs the real `assent` command in a child process.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ASSENT_BIN = fileURLToPath(new URL('../../bin/assent.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [ASSENT_BIN, ...args],
      { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, cwd, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
