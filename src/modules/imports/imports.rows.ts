// One CSV row read into a contact and its consents, or the reasons it is rejected: every cell is
// checked, and a row with any bad cell is rejected whole (each bad cell named), so nothing of it
// is half-imported. Pure: no database, the same answer in a dry run.
import { isIP } from 'node:net';
import { normalizeEmail, normalizePhone } from '../../platform/addresses.ts';
import { iso, parseInstant } from '../../platform/clock.ts';
import type { Channel } from '../channels/index.ts';
import type { Purpose } from '../purposes/index.ts';
import { addressHash } from '../suppressions/index.ts';
import type { FieldType, Mapping } from './imports.columns.ts';

export type ProofGrade = 'strong' | 'fair' | 'weak';
export type ImportedAction = 'granted' | 'refused' | 'withdrawn';
export type AttributeValue = string | number | boolean;

export interface RowReject {
  line: number;
  column: string;
  reason: string;
}

export interface ImportedConsent {
  purpose: Purpose;
  channel: Channel;
  column: string;
  action: ImportedAction;
  /** Collection date (ISO), when the file gives one. */
  at: string | null;
  doiAt: string | null;
  source: string | null;
  wording: string | null;
  ip: string | null;
  grade: ProofGrade;
}

/** Contact columns a row fills (snake_case, as stored), only those it has a value for. */
export interface RowValues {
  first_name?: string;
  last_name?: string;
  locale?: string;
  kind?: string;
  lifecycle?: string;
  last_purchase_at?: string;
  source?: string;
}

export interface ImportRow {
  line: number;
  email: string | null;
  emailHash: string | null;
  phone: string | null;
  phoneHash: string | null;
  values: RowValues;
  attributes: Record<string, AttributeValue>;
  consents: ImportedConsent[];
}

export interface RowContext {
  now: Date;
  defaultRegion: string;
  secret: string;
}

/** The grade of an imported consent's proof: what re-permission campaigns select on. */
export function proofGrade(c: {
  at: string | null;
  doiAt: string | null;
  source: string | null;
  wording: string | null;
  ip: string | null;
}): ProofGrade {
  if (c.doiAt && c.ip && c.wording) return 'strong';
  if (c.at && c.source) return 'fair';
  return 'weak';
}

const fold = (value: string) =>
  value
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');

const consentWords: Record<string, ImportedAction> = {
  yes: 'granted',
  oui: 'granted',
  no: 'refused',
  non: 'refused',
  withdrawn: 'withdrawn',
  retire: 'withdrawn',
};

const kindWords: Record<string, string> = {
  person: 'person',
  personne: 'person',
  particulier: 'person',
  b2c: 'person',
  professional: 'professional',
  professionnel: 'professional',
  professionnelle: 'professional',
  pro: 'professional',
  entreprise: 'professional',
  b2b: 'professional',
};

const lifecycleWords: Record<string, string> = {
  prospect: 'prospect',
  customer: 'customer',
  client: 'customer',
  cliente: 'customer',
  formercustomer: 'former_customer',
  ancienclient: 'former_customer',
  anciennecliente: 'former_customer',
  exclient: 'former_customer',
  excliente: 'former_customer',
};

const booleanWords: Record<string, boolean> = {
  true: true,
  false: false,
  yes: true,
  no: false,
  oui: true,
  non: false,
  '1': true,
  '0': false,
  vrai: true,
  faux: false,
};

const FRENCH_DATE = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T]+(\d{1,2})[:h](\d{2})(?::(\d{2}))?)?$/;

/**
 * A date as CRMs write it: ISO-8601 (date or date-time) or French `DD/MM/YYYY[ HH:MM[:SS]]`.
 * Times without an offset are read as UTC. Undefined when it is no real date.
 */
export function parseImportDate(value: string): Date | undefined {
  const m = FRENCH_DATE.exec(value);
  if (!m) return parseInstant(value);
  const day = Number(m[1]);
  const month = Number(m[2]);
  const year = Number(m[3]);
  const hour = Number(m[4] ?? 0);
  const minute = Number(m[5] ?? 0);
  const second = Number(m[6] ?? 0);
  // Date.UTC rolls impossible dates over (31/02 becomes 3 March): refuse them instead.
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second));
}

/** Excel's `="0612…"` (a cell forced to text) is read as its text; spaces around a cell are not data. */
function clean(cell: string | undefined): string {
  if (cell === undefined) return '';
  const value = cell.trim();
  const forced = /^="(.*)"$/.exec(value);
  return forced ? (forced[1] as string).trim() : value;
}

/** One rejected cell. */
const rejectAt = (rejects: RowReject[], line: number, column: string, reason: string) => {
  rejects.push({ line, column, reason });
};

/** A text cell: undefined when empty, a reject when too long. */
function textCell(cells: string[], at: { index: number; name: string } | undefined, max: number, line: number, rejects: RowReject[]) {
  if (!at) return undefined;
  const value = clean(cells[at.index]);
  if (!value) return undefined;
  if (value.length > max) {
    rejectAt(rejects, line, at.name, `is longer than ${max} characters`);
    return undefined;
  }
  return value;
}

/** A word from a closed list (kind, lifecycle), in any of its spellings. */
function wordCell(
  cells: string[],
  at: { index: number; name: string } | undefined,
  words: Record<string, string>,
  expected: string,
  line: number,
  rejects: RowReject[],
) {
  if (!at) return undefined;
  const value = clean(cells[at.index]);
  if (!value) return undefined;
  const known = words[fold(value)];
  if (!known) rejectAt(rejects, line, at.name, `must be ${expected} (got "${value.slice(0, 40)}")`);
  return known;
}

/** A date cell (ISO or French), never in the future. */
function dateCell(cells: string[], at: { index: number; name: string } | undefined, now: Date, line: number, rejects: RowReject[]) {
  if (!at) return null;
  const value = clean(cells[at.index]);
  if (!value) return null;
  const date = parseImportDate(value);
  if (!date) rejectAt(rejects, line, at.name, 'is not a date (YYYY-MM-DD, DD/MM/YYYY or DD/MM/YYYY HH:MM)');
  else if (date.getTime() > now.getTime()) rejectAt(rejects, line, at.name, 'is in the future');
  else return iso(date);
  return null;
}

const MAX = { name: 100, source: 200, attribute: 2000, wording: 10_000, consentSource: 500 };

/** Reads one record. `rejects` is empty exactly when `row` is set. */
export function readRow(cells: string[], line: number, mapping: Mapping, context: RowContext): { row?: ImportRow; rejects: RowReject[] } {
  const rejects: RowReject[] = [];
  const width = mapping.header.length;
  if (cells.length < width) {
    rejectAt(rejects, line, '', `has ${cells.length} fields where the header has ${width}: a delimiter is missing or a quote is misplaced`);
    return { rejects };
  }
  if (cells.length > width) {
    for (let i = width; i < cells.length; i += 1) {
      if ((cells[i] as string).trim() !== '') {
        rejectAt(rejects, line, '', `has ${cells.length} fields where the header has ${width}: a delimiter is not quoted`);
        return { rejects };
      }
    }
  }
  const { fields } = mapping;

  let email: string | null = null;
  if (fields.email) {
    const raw = clean(cells[fields.email.index]);
    if (raw) {
      email = normalizeEmail(raw) ?? null;
      if (!email) rejectAt(rejects, line, fields.email.name, 'is not a valid email address');
    }
  }
  let phone: string | null = null;
  if (fields.phone) {
    const raw = clean(cells[fields.phone.index]);
    if (raw) {
      phone = normalizePhone(raw, context.defaultRegion) ?? null;
      if (!phone) {
        rejectAt(
          rejects,
          line,
          fields.phone.name,
          `is not a valid phone number (read in region ${context.defaultRegion} without a +country code)`,
        );
      }
    }
  }
  if (!email && !phone && rejects.length === 0) {
    rejectAt(rejects, line, fields.email?.name ?? fields.phone?.name ?? '', 'a contact needs an email or a phone: both are empty');
  }

  const values: RowValues = {};
  const firstName = textCell(cells, fields.firstName, MAX.name, line, rejects);
  if (firstName) values.first_name = firstName;
  const lastName = textCell(cells, fields.lastName, MAX.name, line, rejects);
  if (lastName) values.last_name = lastName;
  const source = textCell(cells, fields.source, MAX.source, line, rejects);
  if (source) values.source = source;
  const kind = wordCell(cells, fields.kind, kindWords, 'person or professional (particulier, professionnel)', line, rejects);
  if (kind) values.kind = kind;
  const lifecycle = wordCell(
    cells,
    fields.lifecycle,
    lifecycleWords,
    'prospect, customer or former_customer (client, ancien client)',
    line,
    rejects,
  );
  if (lifecycle) values.lifecycle = lifecycle;
  if (fields.locale) {
    const value = clean(cells[fields.locale.index]);
    if (value) {
      const m = /^([a-zA-Z]{2})(?:[-_]([a-zA-Z]{2}))?$/.exec(value);
      if (m) values.locale = m[2] ? `${(m[1] as string).toLowerCase()}-${m[2].toUpperCase()}` : (m[1] as string).toLowerCase();
      else rejectAt(rejects, line, fields.locale.name, `must be a language code such as fr or en-GB (got "${value.slice(0, 40)}")`);
    }
  }
  const lastPurchaseAt = dateCell(cells, fields.lastPurchaseAt, context.now, line, rejects);
  if (lastPurchaseAt) values.last_purchase_at = lastPurchaseAt;

  const attributes: Record<string, AttributeValue> = {};
  for (const a of mapping.attributes) {
    const value = clean(cells[a.index]);
    if (!value) continue;
    const read = readAttribute(a.type, value);
    if (typeof read === 'object') rejectAt(rejects, line, a.name, read.error);
    else attributes[a.key] = read;
  }

  const consents: ImportedConsent[] = [];
  for (const c of mapping.consents) {
    const value = clean(cells[c.value]);
    if (!value) continue;
    if (!c.resolved) {
      rejectAt(rejects, line, c.column, c.problem ?? 'cannot be imported');
      continue;
    }
    const action = consentWords[fold(value)];
    if (!action) {
      rejectAt(rejects, line, c.column, `must be yes, no, withdrawn, oui or non (got "${value.slice(0, 40)}")`);
      continue;
    }
    const { parts } = c;
    const at = dateCell(cells, parts.at, context.now, line, rejects);
    const doiAt = dateCell(cells, parts.doi_at, context.now, line, rejects);
    if (at && doiAt && doiAt < at) {
      rejectAt(rejects, line, parts.doi_at?.name ?? c.column, 'the double opt-in is dated before the consent it confirms');
    }
    let ip: string | null = null;
    if (parts.ip) {
      const value = clean(cells[parts.ip.index]);
      if (value && isIP(value)) ip = value;
      else if (value) rejectAt(rejects, line, parts.ip.name, 'is not an IP address');
    }
    const collectedThrough = textCell(cells, parts.source, MAX.consentSource, line, rejects) ?? null;
    const wording = textCell(cells, parts.wording, MAX.wording, line, rejects) ?? null;
    const facts = { at, doiAt, source: collectedThrough, wording, ip };
    consents.push({
      purpose: c.resolved.purpose,
      channel: c.resolved.channel,
      column: c.column,
      action,
      ...facts,
      grade: proofGrade(facts),
    });
  }

  if (rejects.length > 0) return { rejects };
  return {
    row: {
      line,
      email,
      emailHash: email ? addressHash(context.secret, email) : null,
      phone,
      phoneHash: phone ? addressHash(context.secret, phone) : null,
      values,
      attributes,
      consents,
    },
    rejects,
  };
}

function readAttribute(type: FieldType, value: string): AttributeValue | { error: string } {
  switch (type) {
    case 'string':
      return value.length > MAX.attribute ? { error: `is longer than ${MAX.attribute} characters` } : value;
    case 'number': {
      // French exports write 12,5 and 1 234,5.
      const n = /^[+-]?[\d\s\u00a0\u202f]*[.,]?\d+$/.test(value)
        ? Number(value.replace(/[\s\u00a0\u202f]/g, '').replace(',', '.'))
        : Number.NaN;
      return Number.isFinite(n) ? n : { error: `must be a number (got "${value.slice(0, 40)}")` };
    }
    case 'boolean': {
      const b = booleanWords[fold(value)];
      return b === undefined ? { error: `must be yes or no, true or false (got "${value.slice(0, 40)}")` } : b;
    }
    case 'date': {
      const at = parseImportDate(value);
      if (!at) return { error: 'is not a date (YYYY-MM-DD, or DD/MM/YYYY)' };
      const text = iso(at);
      return text.endsWith('T00:00:00.000Z') ? text.slice(0, 10) : text;
    }
  }
}
