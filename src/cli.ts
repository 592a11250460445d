// The `assent` command: serve, worker, migrate, keys, ledger, outbox, campaigns, export, scheduler. Every command honours
// DATABASE_URL and prints one JSON document with --json.
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig } from './config.ts';
import { ManualClock, parseInstant } from './platform/clock.ts';
import type { AppContext } from './platform/context.ts';
import { DomainError } from './platform/errors.ts';

// Modules are loaded by the command that needs them: `--help` and small commands start fast.
const scopes = ['read', 'write', 'admin'];
const core = () => import('./modules/consents/index.ts');
const auth = () => import('./modules/auth/index.ts');

const print = (json: boolean, value: unknown, human: () => string) => {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
};

const table = (rows: Array<Record<string, unknown>>): string => {
  if (rows.length === 0) return '(none)';
  const cols = Object.keys(rows[0] as object);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '-').length)));
  const line = (cells: string[]) => cells.map((v, i) => v.padEnd(width[i] as number)).join('  ');
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => String(r[c] ?? '-'))))].join('\n');
};

/** Runs work with a context (the CLI's own logs go to stderr at warn), then closes it. */
async function withContext<T>(work: (ctx: AppContext) => Promise<T>, options: { clock?: ManualClock } = {}): Promise<T> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' });
  const { createLogger } = await import('./platform/logger.ts');
  const { createContext } = await import('./boot.ts');
  const pino = (await import('pino')).default;
  const ctx = await createContext(config, {
    logger: createLogger(config.logLevel, pino.destination(2)),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  try {
    return await work(ctx);
  } finally {
    const { closeContext } = await import('./boot.ts');
    await closeContext(ctx);
  }
}

async function progressBar(label: string, enabled: boolean) {
  if (!enabled || !process.stderr.isTTY) return { update: (_n: number) => {}, stop: () => {} };
  const { SingleBar } = await import('cli-progress');
  const bar = new SingleBar({ format: `${label} {value} contacts | {duration_formatted}`, stream: process.stderr });
  bar.start(0, 0);
  return { update: (n: number) => bar.update(n), stop: () => bar.stop() };
}

const program = new Command()
  .name('assent')
  .description(
    'Assent: consent ledger, contacts and contactability decisions.\nEvery command reads DATABASE_URL (default sqlite:./data/assent.db).',
  )
  .showHelpAfterError();

program
  .command('serve')
  .description('Serve the API (and run scheduled jobs every SCHEDULER_INTERVAL_SECONDS)')
  .option('--port <port>', 'port to listen on (default: PORT or 3000)')
  .option('--host <host>', 'address to bind (default: HOST or 127.0.0.1)')
  .action(async (opts: { port?: string; host?: string }) => {
    const config = loadConfig({
      ...process.env,
      ...(opts.port !== undefined ? { PORT: opts.port } : {}),
      ...(opts.host !== undefined ? { HOST: opts.host } : {}),
    });
    const { createContext } = await import('./boot.ts');
    const { startServer } = await import('./server.ts');
    const ctx = await createContext(config);
    const stop = await startServer(ctx, { port: config.port, host: config.host });
    ctx.logger.info({ port: config.port, host: config.host, store: config.database.dialect }, 'assent is serving');
    const anyKey = await ctx.db.kysely.selectFrom('api_keys').select('id').where('revoked_at', 'is', null).limit(1).executeTakeFirst();
    if (!anyKey) ctx.logger.warn('no API key yet: create one with `npx assent keys create --name admin --scope admin`');
    const shutdown = () => {
      stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });

program
  .command('worker')
  .description('Run scheduled jobs and send queued messages and campaign deliveries (no HTTP)')
  .action(async () => {
    const config = loadConfig(process.env);
    const { createContext } = await import('./boot.ts');
    const { startWorker } = await import('./worker.ts');
    const ctx = await createContext(config);
    const stop = startWorker(ctx);
    ctx.logger.info({ store: config.database.dialect, pid: process.pid }, 'assent worker started');
    const shutdown = () => {
      stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });

program
  .command('migrate')
  .description('Bring the database schema up to date (also done at every start)')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const config = loadConfig(process.env);
    const { createDb } = await import('./database.ts');
    const { migrateToLatest } = await import('./migrations/index.ts');
    const db = createDb(config.database);
    try {
      const applied = await migrateToLatest(db.kysely);
      print(!!opts.json, { applied, store: config.database.dialect }, () =>
        applied.length ? `applied: ${applied.join(', ')}` : 'the schema is up to date',
      );
    } finally {
      await db.close();
    }
    await withContext(async () => undefined);
  });

const keys = program.command('keys').description('API keys (scopes: read < write < admin)');
keys
  .command('create')
  .description('Create an API key; it is printed once and stored hashed')
  .requiredOption('--name <name>', 'a unique name, e.g. crm-sync')
  .addOption(new Option('--scope <scope>', 'what it may do').choices(scopes).makeOptionMandatory())
  .option('--json', 'print { name, scope, key }')
  .action(async (opts: { name: string; scope: 'read' | 'write' | 'admin'; json?: boolean }) => {
    const created = await withContext(async (ctx) => (await auth()).createKey(ctx, { name: opts.name, scope: opts.scope }));
    print(
      !!opts.json,
      created,
      () => `${created.key}\n(key "${created.name}", scope ${created.scope}: store it now, it is not shown again)`,
    );
  });
keys
  .command('list')
  .description('List API keys (never their secret)')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const items = await withContext(async (ctx) => (await auth()).listKeys(ctx));
    print(!!opts.json, { items }, () => table(items as unknown as Array<Record<string, unknown>>));
  });
keys
  .command('revoke')
  .description('Revoke an API key by name')
  .argument('<name>', 'the key name')
  .option('--json', 'print JSON')
  .action(async (name: string, opts: { json?: boolean }) => {
    const info = await withContext(async (ctx) => (await auth()).revokeKey(ctx, name));
    print(!!opts.json, info, () => `revoked "${info.name}"`);
  });

const ledger = program.command('ledger').description('The consent ledger');
ledger
  .command('verify')
  .description('Check every hash chain and checkpoint; exit 1 when anything was altered')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const bar = await progressBar('verifying', !opts.json);
    const result = await withContext(async (ctx) => (await core()).verifyLedger(ctx, bar.update));
    bar.stop();
    print(!!opts.json, result, () =>
      result.ok
        ? `ledger OK: ${result.events} events in ${result.contacts} chains, ${result.checkpoints} checkpoints`
        : `LEDGER BROKEN: contact ${result.firstBroken?.contactId} event ${result.firstBroken?.eventId ?? '-'} (seq ${result.firstBroken?.seq ?? '-'}): ${result.firstBroken?.reason}`,
    );
    if (!result.ok) process.exitCode = 1;
  });
ledger
  .command('rebuild-state')
  .description('Rebuild the current-state table from the ledger')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const bar = await progressBar('replaying', !opts.json);
    const result = await withContext(async (ctx) => (await core()).rebuildState(ctx, bar.update));
    bar.stop();
    print(!!opts.json, result, () => `rebuilt ${result.states} states for ${result.contacts} contacts`);
  });
ledger
  .command('checkpoint')
  .description('Seal the chain heads that moved since the last checkpoint; prints the digest to keep elsewhere')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const result = await withContext(async (ctx) => (await core()).takeCheckpoint(ctx));
    print(!!opts.json, result ?? null, () =>
      result ? `checkpoint ${result.id}: ${result.digest} (${result.heads} heads)` : 'nothing moved since the last checkpoint',
    );
  });

const collect = (value: string, previous: string[]) => [...previous, value];

/** The import's bar: rows against the total the check counted, rows/s and ETA (on a terminal only). */
async function importProgressBar(enabled: boolean) {
  if (!enabled || !process.stderr.isTTY) return { update: (_p: { read: number; rows: number }) => {}, stop: () => {} };
  const { SingleBar } = await import('cli-progress');
  const bar = new SingleBar({
    format: 'importing [{bar}] {percentage}% | {value}/{total} rows | {speed} rows/s | ETA {eta_formatted}',
    stream: process.stderr,
    etaBuffer: 20,
  });
  const started = Date.now();
  let begun = false;
  return {
    update: (p: { read: number; rows: number }) => {
      if (!begun) {
        bar.start(p.rows, 0, { speed: 0 });
        begun = true;
      }
      const seconds = (Date.now() - started) / 1000;
      bar.update(p.read, { speed: seconds > 0 ? Math.round(p.read / seconds) : 0 });
    },
    stop: () => {
      if (begun) bar.stop();
    },
  };
}

const imports = program.command('import').description('Bring data in');
imports
  .command('contacts')
  .description(
    'Import contacts and their consents from a CSV export. The file is checked whole first (encoding, delimiter, columns);\n' +
      'rows are then written 1,000 a transaction; bad rows are rejected with their line, column and reason.',
  )
  .argument('<file>', 'the CSV file: comma, semicolon or tab separated; UTF-8 (with or without BOM) or Windows-1252')
  .option(
    '--map <column=target>',
    'read a column as a field, e.g. --map "Courriel=email" (repeat it; target "-" ignores the column)',
    collect,
    [],
  )
  .option('--ignore-unknown', 'ignore the columns that map to nothing (otherwise the import is refused)')
  .addOption(
    new Option('--on-duplicate <mode>', 'a row whose email (or else phone) is a contact already: fill its empty fields, or skip the row')
      .choices(['update', 'skip'])
      .default('update'),
  )
  .option('--dry-run', 'check every row and count what would happen; no contact, consent or ledger event is written')
  .option('--force', 'import the file again although an import of the same file completed')
  .option('--rejects <file>', 'write the rejected rows (line,column,reason) to this CSV file')
  .addOption(new Option('--encoding <encoding>', 'the file encoding').choices(['auto', 'utf-8', 'windows-1252']).default('auto'))
  .option('--json', 'print the summary as JSON')
  .action(
    async (
      file: string,
      opts: {
        map: string[];
        ignoreUnknown?: boolean;
        onDuplicate: 'update' | 'skip';
        dryRun?: boolean;
        force?: boolean;
        rejects?: string;
        encoding: 'auto' | 'utf-8' | 'windows-1252';
        json?: boolean;
      },
    ) => {
      const { existsSync, statSync, createWriteStream } = await import('node:fs');
      if (!existsSync(file) || !statSync(file).isFile()) throw new DomainError('import_file_invalid', `There is no file "${file}"`);
      const { importContactsFile, parseMapOption, rejectsCsv } = await import('./modules/imports/index.ts');
      const map: Record<string, string> = {};
      for (const entry of opts.map) {
        const pair = parseMapOption(entry);
        if (!pair) throw new DomainError('validation_failed', `--map "${entry}" must look like "<column>=<target>", e.g. "Courriel=email"`);
        map[pair[0]] = pair[1];
      }
      const { cliRequest } = await import('./platform/context.ts');
      const bar = await importProgressBar(!opts.json);
      const summary = await withContext(async (ctx) => {
        try {
          const result = await importContactsFile(
            ctx,
            cliRequest(),
            file,
            {
              map,
              ignoreUnknown: !!opts.ignoreUnknown,
              onDuplicate: opts.onDuplicate,
              dryRun: !!opts.dryRun,
              force: !!opts.force,
              encoding: opts.encoding,
            },
            bar.update,
          );
          if (opts.rejects) {
            const out = createWriteStream(opts.rejects);
            for await (const chunk of rejectsCsv(ctx, result.id))
              if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
            await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
          }
          return result;
        } finally {
          bar.stop();
        }
      });
      print(!!opts.json, summary, () => {
        const lines = [
          `import ${summary.id}: ${summary.status}${summary.dryRun ? ' (dry run: nothing was written)' : ''}`,
          '',
          table([
            {
              read: summary.read,
              written: summary.written,
              updated: summary.updated,
              rejected: summary.rejected,
              skipped: summary.skipped,
              consents: summary.consents,
            },
          ]),
        ];
        const report = summary.report;
        if (summary.alreadyImported) {
          lines.push('', `this file was imported already (import ${summary.alreadyImported}): nothing done; --force imports it again`);
        } else if (report) {
          lines.push(
            '',
            `consents by proof: strong ${report.grades.strong}, fair ${report.grades.fair}, weak ${report.grades.weak}` +
              ` (${report.events} ledger events); kept (already known) ${report.consentsKept}, not recorded (suppressed address) ${report.consentsSuppressed}`,
            `read as ${report.encoding}, ${report.delimiter === '\t' ? 'tab' : `"${report.delimiter}"`}-separated`,
          );
          if (report.ignored.length > 0) lines.push(`ignored columns: ${report.ignored.join(', ')}`);
          for (const warning of report.warnings) lines.push(`warning: ${warning}`);
        }
        if (summary.rejected > 0) {
          lines.push(
            opts.rejects
              ? `rejected rows written to ${opts.rejects}`
              : `rejected rows: --rejects FILE, or GET /v1/imports/${summary.id}/rejects.csv`,
          );
        }
        if (summary.error) lines.push(`error: ${summary.error}`);
        return lines.join('\n');
      });
    },
  );

const outbox = program
  .command('outbox')
  .description('Messages Assent sent or keeps (the outbox transport keeps them when SMTP_URL is not set)');
outbox
  .command('list')
  .description('List messages, newest first')
  .option('--status <status>', 'only this status: queued, sending, sent, stored, failed, cancelled')
  .option('--limit <n>', 'how many (1-500)', (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 500) throw new InvalidArgumentError('expected a whole number from 1 to 500');
    return n;
  })
  .option('--json', 'print JSON')
  .action(async (opts: { status?: string; limit?: number; json?: boolean }) => {
    const { listOutbox } = await import('./modules/messaging/index.ts');
    const page = await withContext((ctx) => listOutbox(ctx, { ...(opts.status ? { status: opts.status } : {}), limit: opts.limit ?? 50 }));
    print(!!opts.json, page, () =>
      table(page.items.map((m) => ({ id: m.id, status: m.status, kind: m.kind, to: m.to, subject: m.subject, created: m.createdAt }))),
    );
  });
outbox
  .command('show')
  .description('Show one message: headers, subject, text')
  .argument('<id>', 'the message id')
  .option('--json', 'print JSON')
  .action(async (id: string, opts: { json?: boolean }) => {
    const { getOutboxMessage } = await import('./modules/messaging/index.ts');
    const message = await withContext((ctx) => getOutboxMessage(ctx, id));
    print(!!opts.json, message, () =>
      [
        `Message-ID: ${message.messageId}`,
        `To: ${message.to ?? '(erased)'}`,
        `Subject: ${message.subject ?? ''}`,
        ...Object.entries(message.headers).map(([k, v]) => `${k}: ${v}`),
        `Status: ${message.status}${message.lastError ? ` (${message.lastError})` : ''}`,
        '',
        message.text,
      ].join('\n'),
    );
  });

const campaigns = program.command('campaigns').description('Re-permission campaigns');
campaigns
  .command('list')
  .description('List campaigns')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const { listCampaigns } = await import('./modules/campaigns/index.ts');
    const items = await withContext((ctx) => listCampaigns(ctx));
    print(!!opts.json, { items }, () =>
      table(items.map((c) => ({ key: c.key, status: c.status, channel: c.channel, startAt: c.startAt, deadline: c.deadline }))),
    );
  });
campaigns
  .command('stats')
  .description('Counts per step and in total (audience, excluded, sent, clicked, confirmed, unsubscribed…)')
  .argument('<key>', 'campaign key')
  .option('--json', 'print JSON')
  .action(async (key: string, opts: { json?: boolean }) => {
    const { campaignStats } = await import('./modules/campaigns/index.ts');
    const stats = await withContext((ctx) => campaignStats(ctx, key));
    print(!!opts.json, stats, () => {
      const cols = (r: Record<string, unknown>) => ({
        audience: r.audience,
        queued: r.queued,
        sent: r.sent,
        failed: r.failed,
        cancelled: r.cancelled,
        clicked: r.clicked,
        confirmed: r.confirmed,
        unsubscribed: r.unsubscribed,
        bounced: r.bounced,
        pending: r.pending,
      });
      const excluded = Object.entries(stats.totals.excludedByReason)
        .map(([reason, n]) => `${reason} ${n}`)
        .join(', ');
      return [
        `campaign ${stats.campaign} (${stats.status}) — excluded at launch: ${stats.totals.excluded}${excluded ? ` (${excluded})` : ''}`,
        '',
        table([...stats.steps.map((s) => ({ step: String(s.step), ...cols(s) })), { step: 'total', ...cols(stats.totals) }]),
      ].join('\n');
    });
  });

program
  .command('export')
  .description('Stream contacts (in the import’s columns), consent states or ledger events as CSV or JSON Lines')
  .addArgument(new Argument('<kind>', 'what to export').choices(['contacts', 'consents', 'events']))
  .option('--segment <key>', 'only the members of this segment')
  .addOption(new Option('--format <format>', 'file format').choices(['csv', 'jsonl']).default('csv'))
  .option('--out <file>', 'write to this file (default: standard output)')
  .option('--json', 'with --out: print { kind, format, segment, rows, out }')
  .action(async (kind: string, opts: { segment?: string; format: string; out?: string; json?: boolean }) => {
    const { openExport } = await import('./modules/exports/index.ts');
    const { createWriteStream, renameSync, rmSync } = await import('node:fs');
    const { pipeline } = await import('node:stream/promises');
    const bar = await progressBar('exporting', !!opts.out && !opts.json);
    const summary = await withContext(async (ctx) => {
      const opened = await openExport(ctx, { kind, format: opts.format, segment: opts.segment });
      const timer = setInterval(() => bar.update(opened.progress.rows), 250);
      // A file appears whole or not at all: written aside, renamed when complete.
      const partial = opts.out ? `${opts.out}.part` : undefined;
      try {
        await pipeline(opened.stream, partial ? createWriteStream(partial) : process.stdout);
        if (partial && opts.out) renameSync(partial, opts.out);
      } catch (error) {
        if (partial) rmSync(partial, { force: true });
        // A reader that stopped early (`| head`) is not a failure.
        else if ((error as { code?: string }).code === 'EPIPE') return null;
        throw error;
      } finally {
        clearInterval(timer);
        bar.update(opened.progress.rows);
        bar.stop();
      }
      return { kind: opened.kind, format: opened.format, segment: opened.segment, rows: opened.progress.rows, out: opts.out ?? null };
    });
    if (opts.out && summary) print(!!opts.json, summary, () => `exported ${summary.rows} ${summary.kind} rows to ${opts.out}`);
  });

const scheduler = program.command('scheduler').description('Scheduled jobs');
scheduler
  .command('run')
  .description('Run every job that is due, as if it were the given time, then exit')
  .option('--at <time>', 'ISO-8601 time to run as (default: now)', (value: string) => {
    if (!parseInstant(value)) throw new InvalidArgumentError('expected an ISO-8601 time, e.g. 2026-12-24T09:00:00Z');
    return value;
  })
  .option('--json', 'print JSON')
  .action(async (opts: { at?: string; json?: boolean }) => {
    const at = opts.at ? (parseInstant(opts.at) as Date) : new Date();
    const clock = new ManualClock(at);
    const { runDueJobs } = await import('./modules/scheduler/index.ts');
    const results = await withContext((ctx) => runDueJobs(ctx, at), { clock });
    print(!!opts.json, { at: at.toISOString(), jobs: results }, () =>
      table(results.map((r) => ({ job: r.job, ran: r.ran, result: r.result === undefined ? '' : JSON.stringify(r.result) }))),
    );
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof DomainError) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`error: ${(error as Error).message}\n`);
  process.exit(1);
}
