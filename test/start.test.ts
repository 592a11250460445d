// What a newcomer does first: `npm start` in a fresh checkout serves on port 3000 with ./data/assent.db.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ASSENT_BIN, runCli } from './helpers/cli.ts';

async function waitForHealth(url: string, child: ChildProcess, ms = 30_000): Promise<Response> {
  const until = Date.now() + ms;
  let lastError: unknown;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`assent exited with ${child.exitCode}`);
    try {
      return await fetch(url);
    } catch (error) {
      lastError = error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`no answer from ${url}: ${String(lastError)}`);
}

describe('npm start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'assent-start-'));
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves on port 3000 with ./data/assent.db created on first start', async () => {
    const env = { ...process.env };
    for (const name of ['DATABASE_URL', 'PORT', 'HOST', 'ASSENT_SECRET']) delete env[name];
    child = spawn(process.execPath, [ASSENT_BIN, 'serve'], { cwd: dir, env: { ...env, LOG_LEVEL: 'warn' }, stdio: 'ignore' });
    const res = await waitForHealth('http://127.0.0.1:3000/healthz', child);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    expect(existsSync(join(dir, 'data', 'assent.db'))).toBe(true);
    const unauthenticated = await fetch('http://127.0.0.1:3000/v1/contacts');
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get('content-type')).toContain('application/problem+json');

    // With no SMTP_URL, mail stays in the outbox: a double opt-in through a form shows up there.
    const cleanEnv = { DATABASE_URL: '', ASSENT_SECRET: '' };
    const created = await runCli(['keys', 'create', '--name', 'newcomer', '--scope', 'admin', '--json'], cleanEnv, dir);
    expect(created.code, created.stderr).toBe(0);
    const headers = { authorization: `Bearer ${JSON.parse(created.stdout).key}`, 'content-type': 'application/json' };
    const api = (path: string, body: unknown) =>
      fetch(`http://127.0.0.1:3000${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
    expect((await api('/v1/purposes', { key: 'letter', title: { fr: 'La lettre' }, channels: ['email'], doubleOptIn: true })).status).toBe(
      201,
    );
    expect(
      (
        await api('/v1/forms', {
          key: 'join',
          title: 'Rejoindre',
          locale: 'fr',
          fields: ['email'],
          purposes: [{ purpose: 'letter', channels: ['email'] }],
        })
      ).status,
    ).toBe(201);
    const submitted = await fetch('http://127.0.0.1:3000/f/join', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'newcomer@example.com', consents: ['letter:email'] }),
    });
    expect(submitted.status).toBe(201);
    await expect
      .poll(
        async () => {
          const listed = await runCli(['outbox', 'list', '--json'], cleanEnv, dir);
          return JSON.parse(listed.stdout).items.map((m: { kind: string; to: string; status: string }) => `${m.kind} ${m.to} ${m.status}`);
        },
        { timeout: 15_000 },
      )
      .toContain('double_opt_in newcomer@example.com stored');

    const stopped = new Promise((r) => child?.once('exit', r));
    child.kill('SIGTERM');
    await stopped;
    expect(child.exitCode).toBe(0);
  });
});
