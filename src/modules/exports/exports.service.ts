// Bulk exports, streamed page by page in key order (memory stays flat whatever the size), and the
// access export of one person (RULES 18).
import { Readable } from 'node:stream';
import type { CompiledQuery } from 'kysely';
import { addressKindFor } from '../../platform/addresses.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { listChannels } from '../channels/index.ts';
import { consentStatesOf, eraseEvidence, listEventsOfContact } from '../consents/index.ts';
import { type ContactsTable, effectiveLifecycle, getContactRow, toContact } from '../contacts/index.ts';
import { listPurposes, localized, type Purpose, wordingText } from '../purposes/index.ts';
import { getSegment, segmentScope } from '../segments/index.ts';
import { csvLine } from './exports.csv.ts';
import {
  confirmationsInRangeQuery,
  contactPageQuery,
  deliveriesOfContact,
  eventPageQuery,
  listFieldRows,
  listPurposeVersionRows,
  type Members,
  messagesOfContact,
  statePageQuery,
  statesInRangeQuery,
  suppressionsOfHashes,
} from './exports.repository.ts';

export const exportKinds = ['contacts', 'consents', 'events'] as const;
export type ExportKind = (typeof exportKinds)[number];
export const exportFormats = ['csv', 'jsonl'] as const;
export type ExportFormat = (typeof exportFormats)[number];

/** Rows read from the database per query. */
export const EXPORT_PAGE_SIZE = 1_000;

export interface ExportRequest {
  kind: string;
  format: string;
  segment?: string | undefined;
  pageSize?: number;
}

export interface OpenedExport {
  kind: ExportKind;
  format: ExportFormat;
  segment: string | null;
  contentType: string;
  filename: string;
  columns: string[];
  /** UTF-8 text in string chunks, one per page; reads the next page only when the consumer asks for more (backpressure). */
  stream: Readable;
  /** Rows and pages written so far. */
  progress: { rows: number; pages: number };
}

type Row = Record<string, unknown>;

interface Source {
  columns: string[];
  pages: () => AsyncGenerator<Row[]>;
}

/** The import's contact columns, in this order, before declared attributes and consent columns. */
export const profileColumns = ['email', 'phone', 'firstName', 'lastName', 'lifecycle', 'lastPurchaseAt', 'kind', 'source'] as const;
const consentSuffixes = ['', ':at', ':source', ':wording', ':ip', ':doi_at'] as const;

/**
 * Runs one page's query on the main connection. On SQLite the hot-path reader (`db.read`) keeps a
 * page cache of up to 256 MiB and maps the file: fine for decisions, but a full scan through it
 * grows the process by the size of the database; the main connection keeps memory flat, and
 * other requests still run between pages.
 */
const readPage = async <R>(ctx: AppContext, query: CompiledQuery<R>): Promise<R[]> => (await ctx.db.kysely.executeQuery(query)).rows;

const versionKey = (purpose: string, version: number) => `${purpose}@${version}`;
const pairKey = (purpose: string, channel: string) => `${purpose}\u0000${channel}`;

function parseEvidence(text: string | null | undefined): Record<string, unknown> {
  if (!text) return {};
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return {};
  }
}

const stringOr = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

/**
 * The import's value for a state: granted → yes, refused → no, withdrawn or objected → withdrawn.
 * A pending double opt-in is a yes without a confirmation date (it re-imports pending); expired
 * and none are empty (nothing to re-import).
 */
export function consentValue(status: string, doubleOptIn: boolean): 'yes' | 'no' | 'withdrawn' | null {
  switch (status) {
    case 'granted':
      return 'yes';
    case 'refused':
      return 'no';
    case 'withdrawn':
    case 'objected':
      return 'withdrawn';
    case 'pending':
      return doubleOptIn ? 'yes' : null;
    default:
      return null;
  }
}

async function loadMembers(ctx: AppContext, segment: string | undefined, now: Date): Promise<Members> {
  if (!segment) return undefined;
  return { filter: (await getSegment(ctx, segment)).filter, scope: segmentScope(ctx, now) };
}

/** Every (purpose, channel) a consent column can name: the purposes' channels that exist. */
async function consentPairs(ctx: AppContext): Promise<Array<{ purpose: Purpose; channel: string; doubleOptIn: boolean }>> {
  const channels = new Map((await listChannels(ctx)).map((c) => [c.key, c]));
  return (await listPurposes(ctx)).flatMap((purpose) =>
    purpose.channels.flatMap((key) => {
      const channel = channels.get(key);
      return channel ? [{ purpose, channel: key, doubleOptIn: purpose.doubleOptIn && channel.kind === 'email' }] : [];
    }),
  );
}

async function contactsSource(ctx: AppContext, members: Members, now: Date, pageSize: number): Promise<Source> {
  const fields = await listFieldRows(ctx.db.kysely);
  const pairs = await consentPairs(ctx);
  const versions = new Map(
    (await listPurposeVersionRows(ctx.db.kysely)).map((v) => [
      versionKey(v.purpose_key, v.version),
      { title: JSON.parse(v.title), description: JSON.parse(v.description) },
    ]),
  );
  const columns = [
    ...profileColumns,
    ...fields.map((f) => f.key),
    ...pairs.flatMap(({ purpose, channel }) => consentSuffixes.map((s) => `consent:${purpose.key}:${channel}${s}`)),
  ];
  const formerAfterDays = ctx.config.formerCustomerAfterDays;

  function record(
    contact: ContactsTable,
    states: Map<string, StateInRange> | undefined,
    confirmations: Map<string, string> | undefined,
  ): Row {
    const out: Row = {
      email: contact.email,
      phone: contact.phone,
      firstName: contact.first_name,
      lastName: contact.last_name,
      lifecycle: effectiveLifecycle(contact, now, formerAfterDays),
      lastPurchaseAt: contact.last_purchase_at,
      kind: contact.kind,
      source: contact.source,
    };
    const attributes = JSON.parse(contact.attributes) as Record<string, unknown>;
    for (const field of fields) out[field.key] = attributes[field.key] ?? null;
    for (const { purpose, channel, doubleOptIn } of pairs) {
      const base = `consent:${purpose.key}:${channel}`;
      const state = states?.get(pairKey(purpose.key, channel));
      const value = state ? consentValue(state.status, doubleOptIn) : null;
      if (!state || value === null) {
        for (const s of consentSuffixes) out[`${base}${s}`] = null;
        continue;
      }
      const evidence = parseEvidence(state.evidence);
      const version = versions.get(versionKey(purpose.key, Number(state.purpose_version)));
      const confirmed = Number(state.confirmed) === 1 && state.status === 'granted';
      out[base] = value;
      out[`${base}:at`] = state.since;
      out[`${base}:source`] = state.source_type ?? null;
      out[`${base}:wording`] = stringOr(evidence.text) ?? (version ? wordingText(version, contact.locale) : null);
      out[`${base}:ip`] = stringOr(evidence.ip);
      out[`${base}:doi_at`] = confirmed
        ? (confirmations?.get(pairKey(purpose.key, channel)) ?? stringOr(evidence.doiAt) ?? stringOr(evidence.doi_at))
        : null;
    }
    return out;
  }

  async function* pages(): AsyncGenerator<Row[]> {
    let after = '';
    for (;;) {
      const contacts = await readPage(ctx, contactPageQuery(ctx.db.kysely, members, after, pageSize));
      const first = contacts[0];
      const last = contacts.at(-1);
      if (!first || !last) return;
      const states = new Map<string, Map<string, StateInRange>>();
      let anyConfirmed = false;
      for (const s of await readPage(ctx, statesInRangeQuery(ctx.db.kysely, members, first.id, last.id))) {
        const mine = states.get(s.contact_id) ?? new Map<string, StateInRange>();
        states.set(s.contact_id, mine);
        mine.set(pairKey(s.purpose_key, s.channel_key), s);
        if (Number(s.confirmed) === 1) anyConfirmed = true;
      }
      const confirmations = new Map<string, Map<string, string>>();
      if (anyConfirmed) {
        for (const c of await readPage(ctx, confirmationsInRangeQuery(ctx.db.kysely, members, first.id, last.id))) {
          const mine = confirmations.get(c.contact_id) ?? new Map<string, string>();
          confirmations.set(c.contact_id, mine);
          if (c.confirmed_at) mine.set(pairKey(c.purpose_key, c.channel_key), String(c.confirmed_at));
        }
      }
      yield contacts.map((c) => record(c, states.get(c.id), confirmations.get(c.id)));
      if (contacts.length < pageSize) return;
      after = last.id;
    }
  }

  return { columns, pages };
}

interface StateInRange {
  contact_id: string;
  purpose_key: string;
  channel_key: string;
  status: string;
  since: string;
  confirmed: number;
  purpose_version: number;
  source_type: string | null;
  evidence: string | null;
}

function consentsSource(ctx: AppContext, members: Members, pageSize: number): Source {
  const columns = [
    'contactId',
    'email',
    'phone',
    'purpose',
    'channel',
    'status',
    'since',
    'expiresAt',
    'confirmed',
    'purposeVersion',
    'proofGrade',
    'lastEventId',
    'updatedAt',
  ];
  async function* pages(): AsyncGenerator<Row[]> {
    let after: [string, string, string] = ['', '', ''];
    for (;;) {
      const rows = await readPage(ctx, statePageQuery(ctx.db.kysely, members, after, pageSize));
      const last = rows.at(-1);
      if (!last) return;
      yield rows.map((s) => ({
        contactId: s.contact_id,
        email: s.email,
        phone: s.phone,
        purpose: s.purpose_key,
        channel: s.channel_key,
        status: s.status,
        since: s.since,
        expiresAt: s.expires_at,
        confirmed: Number(s.confirmed) === 1,
        purposeVersion: Number(s.purpose_version),
        proofGrade: s.proof_grade,
        lastEventId: s.last_event_id,
        updatedAt: s.updated_at,
      }));
      if (rows.length < pageSize) return;
      after = [last.contact_id, last.purpose_key, last.channel_key];
    }
  }
  return { columns, pages };
}

function eventsSource(ctx: AppContext, members: Members, pageSize: number): Source {
  const columns = [
    'id',
    'contactId',
    'seq',
    'purpose',
    'purposeVersion',
    'channel',
    'action',
    'status',
    'legalBasis',
    'sourceType',
    'sourceRef',
    'occurredAt',
    'recordedAt',
    'expiresAt',
    'evidence',
    'evidenceHash',
    'prevHash',
    'hash',
  ];
  async function* pages(): AsyncGenerator<Row[]> {
    let after: [string, number] = ['', 0];
    for (;;) {
      const rows = await readPage(ctx, eventPageQuery(ctx.db.kysely, members, after, pageSize));
      const last = rows.at(-1);
      if (!last) return;
      yield rows.map((e) => ({
        id: e.id,
        contactId: e.contact_id,
        seq: Number(e.seq),
        purpose: e.purpose_key,
        purposeVersion: Number(e.purpose_version),
        channel: e.channel_key,
        action: e.action,
        status: e.status,
        legalBasis: e.legal_basis,
        sourceType: e.source_type,
        sourceRef: e.source_ref,
        occurredAt: e.occurred_at,
        recordedAt: e.recorded_at,
        expiresAt: e.expires_at,
        // IP, user agent and URL only as the keyed digests an erasure keeps: with the server
        // secret the evidence hash can still be recomputed from this.
        evidence: eraseEvidence(ctx.secret, parseEvidence(e.evidence)),
        evidenceHash: e.evidence_hash,
        prevHash: e.prev_hash,
        hash: e.hash,
      }));
      if (rows.length < pageSize) return;
      after = [last.contact_id, Number(last.seq)];
    }
  }
  return { columns, pages };
}

function checkChoice<T extends string>(value: string, allowed: readonly T[], path: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new DomainError('validation_failed', `${path} must be one of ${allowed.join(', ')}`, [
    { path, message: `must be one of ${allowed.join(', ')}` },
  ]);
}

/**
 * Prepares an export: checks the kind, format and segment (errors come before any byte is sent),
 * reads the configuration its columns depend on, and returns the stream. Rows are read when the
 * stream is.
 */
export async function openExport(ctx: AppContext, request: ExportRequest): Promise<OpenedExport> {
  const kind = checkChoice(request.kind, exportKinds, '/kind');
  const format = checkChoice(request.format, exportFormats, '/format');
  const pageSize = Math.max(1, Math.min(10_000, Math.floor(request.pageSize ?? EXPORT_PAGE_SIZE)));
  const now = ctx.clock.now();
  const members = await loadMembers(ctx, request.segment, now);
  const source =
    kind === 'contacts'
      ? await contactsSource(ctx, members, now, pageSize)
      : kind === 'consents'
        ? consentsSource(ctx, members, pageSize)
        : eventsSource(ctx, members, pageSize);
  const { columns } = source;
  const progress = { rows: 0, pages: 0 };

  async function* chunks(): AsyncGenerator<string> {
    if (format === 'csv') yield csvLine(columns);
    for await (const page of source.pages()) {
      let chunk = '';
      for (const row of page) chunk += format === 'csv' ? csvLine(columns.map((c) => row[c])) : `${JSON.stringify(row)}\n`;
      progress.rows += page.length;
      progress.pages += 1;
      yield chunk;
    }
  }

  const day = iso(now).slice(0, 10);
  return {
    kind,
    format,
    segment: request.segment ?? null,
    contentType: format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
    filename: `assent-${kind}${request.segment ? `-${request.segment}` : ''}-${day}.${format}`,
    columns,
    // Chunks stay strings (the stream's encoding is theirs): a socket or pipe writes a string
    // straight from the string, where a Buffer made per page would wait for a full garbage
    // collection to be freed — tens of megabytes of dead pages between two.
    stream: Readable.from(chunks(), { objectMode: false, encoding: 'utf8' }),
    progress,
  };
}

// ——— Access and portability (RULES 18) ———

export interface AccessWording {
  /** The language the wording was shown in (the event's, else the contact's). */
  language: 'fr' | 'en';
  title: string;
  description: string;
  infoUrl: string | null;
  wordingHash: string | null;
  /** The exact text recorded with the event, when there is one. */
  textShown: string | null;
}

export interface AccessExport {
  generatedAt: string;
  controller: { name: string; address: string };
  contact: {
    id: string;
    email: string | null;
    phone: string | null;
    firstName: string | null;
    lastName: string | null;
    locale: string | null;
    kind: string;
    lifecycle: string;
    lastPurchaseAt: string | null;
    source: string | null;
    createdAt: string;
    updatedAt: string;
    lastInteractionAt: string | null;
  };
  attributes: Array<{
    key: string;
    value: string | number | boolean;
    type: string | null;
    purpose: string | null;
    retentionDays: number | null;
  }>;
  purposes: Array<{
    key: string;
    version: number;
    title: { fr?: string; en?: string };
    description: { fr?: string; en?: string };
    legalBasis: string;
    retentionDays: number | null;
    recipients: string[];
    partner: { name: string; url?: string } | null;
    infoUrl: string | null;
  }>;
  consents: Array<{
    purpose: string;
    channel: string;
    status: string;
    since: string;
    expiresAt: string | null;
    confirmed: boolean;
    purposeVersion: number;
    proofGrade: string | null;
    lastEventId: string;
  }>;
  events: Array<{
    id: string;
    seq: number;
    purpose: string;
    purposeVersion: number;
    channel: string;
    action: string;
    status: string;
    legalBasis: string;
    source: { type: string; ref: string | null };
    evidence: Record<string, unknown>;
    expiresAt: string | null;
    occurredAt: string;
    recordedAt: string;
    hash: string;
    wording: AccessWording;
  }>;
  deliveries: Array<{
    campaign: string;
    campaignName: string | null;
    channel: string | null;
    step: number;
    template: string;
    status: string;
    createdAt: string;
    sentAt: string | null;
    clickedAt: string | null;
    confirmedAt: string | null;
    unsubscribedAt: string | null;
    bouncedAt: string | null;
  }>;
  messages: Array<{
    id: string;
    kind: string;
    channel: string;
    template: string;
    purpose: string | null;
    status: string;
    createdAt: string;
    sentAt: string | null;
  }>;
  suppressions: Array<{ channel: string; address: 'email' | 'phone'; suppressed: boolean; reasons: string[]; since: string | null }>;
}

const asLang = (value: unknown): 'fr' | 'en' | undefined => {
  const two = typeof value === 'string' ? value.slice(0, 2).toLowerCase() : '';
  return two === 'fr' || two === 'en' ? two : undefined;
};

/**
 * Everything Assent holds on one person: the answer to an access or portability request.
 * An erased contact has nothing personal left: 410, the pseudonymous proof stays at /proof.
 */
export async function accessExport(ctx: AppContext, contactId: string): Promise<AccessExport> {
  const row = await getContactRow(ctx, contactId);
  if (row.erased_at) {
    throw new DomainError(
      'contact_erased',
      'This contact was erased: no personal data is left to export; its pseudonymous proof is at /v1/contacts/{id}/proof',
    );
  }
  const db = ctx.db.kysely;
  const contact = toContact(ctx, row);
  const [fields, stateRows, eventRows, versionRows, deliveryRows, messageRows, purposes, channels] = await Promise.all([
    listFieldRows(db),
    consentStatesOf(db, contactId),
    listEventsOfContact(db, contactId),
    listPurposeVersionRows(db),
    deliveriesOfContact(db, contactId),
    messagesOfContact(db, contactId),
    listPurposes(ctx),
    listChannels(ctx),
  ]);
  const hashes = [row.email_hash, row.phone_hash].filter((h): h is string => !!h);
  const suppressionRows = await suppressionsOfHashes(db, hashes);

  const versions = new Map(versionRows.map((v) => [versionKey(v.purpose_key, v.version), v]));
  const fieldsByKey = new Map(fields.map((f) => [f.key, f]));
  const contactLang = asLang(row.locale) ?? 'fr';

  const events = eventRows.map((e) => {
    const evidence = parseEvidence(e.evidence);
    const language = asLang(evidence.locale) ?? contactLang;
    const version = versions.get(versionKey(e.purpose_key, e.purpose_version));
    const title = version ? JSON.parse(version.title) : {};
    const description = version ? JSON.parse(version.description) : {};
    return {
      id: e.id,
      seq: e.seq,
      purpose: e.purpose_key,
      purposeVersion: e.purpose_version,
      channel: e.channel_key,
      action: e.action,
      status: e.status,
      legalBasis: e.legal_basis,
      source: { type: e.source_type, ref: e.source_ref },
      evidence,
      expiresAt: e.expires_at,
      occurredAt: e.occurred_at,
      recordedAt: e.recorded_at,
      hash: e.hash,
      wording: {
        language,
        title: localized(title, language),
        description: localized(description, language),
        infoUrl: version?.info_url ?? null,
        wordingHash: version?.wording_hash ?? null,
        textShown: stringOr(evidence.text),
      },
    };
  });

  const attributes = Object.entries(contact.attributes).map(([key, value]) => {
    const field = fieldsByKey.get(key);
    return { key, value, type: field?.type ?? null, purpose: field?.purpose_key ?? null, retentionDays: field?.retention_days ?? null };
  });

  const concerned = new Set([
    ...stateRows.map((s) => s.purpose_key),
    ...eventRows.map((e) => e.purpose_key),
    ...attributes.flatMap((a) => (a.purpose ? [a.purpose] : [])),
  ]);

  const suppressions: AccessExport['suppressions'] = [];
  for (const channel of channels) {
    const address = addressKindFor(channel.kind);
    const hash = address === 'email' ? row.email_hash : address === 'phone' ? row.phone_hash : null;
    if (!address || !hash) continue;
    const mine = suppressionRows.filter((s) => s.channel_key === channel.key && s.address_hash === hash);
    suppressions.push({
      channel: channel.key,
      address,
      suppressed: mine.length > 0,
      reasons: mine.map((s) => s.reason),
      since: mine[0]?.created_at ?? null,
    });
  }

  return {
    generatedAt: iso(ctx.clock.now()),
    controller: { name: ctx.config.company.name, address: ctx.config.company.address },
    contact: {
      id: contact.id,
      email: contact.email,
      phone: contact.phone,
      firstName: contact.firstName,
      lastName: contact.lastName,
      locale: contact.locale,
      kind: contact.kind,
      lifecycle: contact.lifecycle,
      lastPurchaseAt: contact.lastPurchaseAt,
      source: contact.source,
      createdAt: contact.createdAt,
      updatedAt: contact.updatedAt,
      lastInteractionAt: contact.lastInteractionAt,
    },
    attributes,
    purposes: purposes
      .filter((p) => concerned.has(p.key))
      .map((p) => ({
        key: p.key,
        version: p.version,
        title: p.title,
        description: p.description,
        legalBasis: p.legalBasis,
        retentionDays: p.retentionDays,
        recipients: p.recipients,
        partner: p.partner,
        infoUrl: p.infoUrl,
      })),
    consents: stateRows
      .map((s) => ({
        purpose: s.purpose_key,
        channel: s.channel_key,
        status: s.status,
        since: s.since,
        expiresAt: s.expires_at,
        confirmed: s.confirmed === 1,
        purposeVersion: s.purpose_version,
        proofGrade: s.proof_grade,
        lastEventId: s.last_event_id,
      }))
      .sort((a, b) => (a.purpose === b.purpose ? a.channel.localeCompare(b.channel) : a.purpose.localeCompare(b.purpose))),
    events,
    deliveries: deliveryRows.map((d) => ({
      campaign: d.campaign_key,
      campaignName: d.campaign_name ?? null,
      channel: d.channel_key ?? null,
      step: Number(d.step),
      template: d.template,
      status: d.status,
      createdAt: d.created_at,
      sentAt: d.sent_at,
      clickedAt: d.clicked_at,
      confirmedAt: d.confirmed_at,
      unsubscribedAt: d.unsubscribed_at,
      bouncedAt: d.bounced_at,
    })),
    messages: messageRows.map((m) => ({
      id: m.id,
      kind: m.kind,
      channel: m.channel_key,
      template: m.template_key,
      purpose: m.purpose_key,
      status: m.status,
      createdAt: m.created_at,
      sentAt: m.sent_at,
    })),
    suppressions,
  };
}
