// Which column of a CRM export holds what: header names matched to contact fields (with the
// French and common names CRMs use), declared attributes and consent columns, `--map` first.

import { DomainError, type FieldError } from '../../platform/errors.ts';
import { KEY_PATTERN } from '../../platform/http.ts';
import type { Channel } from '../channels/index.ts';
import type { Purpose } from '../purposes/index.ts';

export const contactFields = [
  'email',
  'phone',
  'firstName',
  'lastName',
  'locale',
  'kind',
  'lifecycle',
  'lastPurchaseAt',
  'source',
] as const;
export type ContactField = (typeof contactFields)[number];

export const consentParts = ['at', 'source', 'wording', 'ip', 'doi_at'] as const;
export type ConsentPart = (typeof consentParts)[number];

export type FieldType = 'string' | 'number' | 'boolean' | 'date';

/** Spellings CRMs use for each field, compared folded (lower case, no accents, letters and digits only). */
const aliases: Record<ContactField, string[]> = {
  email: ['email', 'mail', 'courriel', 'emailaddress', 'adresseemail', 'adressemail', 'adressecourriel', 'adresseelectronique', 'mel'],
  phone: [
    'phone',
    'telephone',
    'tel',
    'mobile',
    'portable',
    'telephonemobile',
    'telephoneportable',
    'phonenumber',
    'mobilephone',
    'numerodetelephone',
    'gsm',
  ],
  firstName: ['firstname', 'prenom', 'givenname'],
  lastName: ['lastname', 'nom', 'nomdefamille', 'surname', 'familyname'],
  locale: ['locale', 'langue', 'language', 'lang'],
  kind: ['kind', 'typedecontact', 'typecontact', 'type'],
  lifecycle: ['lifecycle', 'cycledevie', 'statutclient', 'statut'],
  lastPurchaseAt: ['lastpurchaseat', 'lastpurchase', 'lastpurchasedate', 'dernierachat', 'datedernierachat', 'datedudernierachat'],
  source: ['source', 'origine', 'provenance'],
};

/** `É-mail ` → `email`: how header names and aliases are compared. */
export const fold = (name: string): string =>
  name
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');

const aliasIndex = new Map<string, ContactField>(
  (Object.entries(aliases) as Array<[ContactField, string[]]>).flatMap(([field, names]) => names.map((n) => [n, field] as const)),
);

export type Target =
  | { kind: 'field'; field: ContactField }
  | { kind: 'attribute'; key: string; type: FieldType }
  | { kind: 'consent'; purpose: string; channel: string; part: ConsentPart | 'value' }
  | { kind: 'ignore' };

/** One consent of a row: the `consent:<purpose>:<channel>` column and its companions. */
export interface ConsentColumns {
  purpose: string;
  channel: string;
  /** Header name of the yes/no column, as rejects name it. */
  column: string;
  value: number;
  parts: Partial<Record<ConsentPart, { index: number; name: string }>>;
  /** Resolved when the purpose and channel exist and go together. */
  resolved?: { purpose: Purpose; channel: Channel };
  /** Why a value in this column cannot be imported (unknown purpose…): each such row is rejected. */
  problem?: string;
}

export interface Mapping {
  /** Header names, in file order. */
  header: string[];
  fields: Partial<Record<ContactField, { index: number; name: string }>>;
  attributes: Array<{ index: number; name: string; key: string; type: FieldType }>;
  consents: ConsentColumns[];
  ignored: string[];
  warnings: string[];
  /** How each column was read, for the report: header name → target. */
  targets: Record<string, string>;
}

export interface MappingContext {
  fields: Array<{ key: string; type: string }>;
  purposes: Purpose[];
  channels: Channel[];
}

export interface MappingOptions {
  map?: Record<string, string>;
  ignoreUnknown?: boolean;
}

const CONSENT = /^consent:([^:]+):([^:]+)(?::([^:]+))?$/;
const keyPattern = new RegExp(KEY_PATTERN);

/** `Courriel=email` → ['Courriel', 'email'] (split at the last `=`: header names may hold one). */
export function parseMapOption(value: string): [string, string] | undefined {
  const at = value.lastIndexOf('=');
  if (at <= 0) return undefined;
  const from = value.slice(0, at).trim();
  const to = value.slice(at + 1).trim();
  return from && to ? [from, to] : undefined;
}

function readTarget(raw: string, fields: Map<string, FieldType>): Target | string {
  const spec = raw.trim();
  if (spec === '-' || spec === 'ignore') return { kind: 'ignore' };
  const consent = CONSENT.exec(spec);
  if (consent) {
    const [, purpose, channel, part] = consent as unknown as [string, string, string, string | undefined];
    if (!keyPattern.test(purpose) || !keyPattern.test(channel)) return `"${spec}": purpose and channel are keys (a-z, 0-9, - and _)`;
    if (part !== undefined && !(consentParts as readonly string[]).includes(part)) {
      return `"${spec}": a consent column ends in nothing or in :${consentParts.join(', :')}`;
    }
    return { kind: 'consent', purpose, channel, part: (part as ConsentPart | undefined) ?? 'value' };
  }
  if ((contactFields as readonly string[]).includes(spec)) return { kind: 'field', field: spec as ContactField };
  if (spec.startsWith('attributes.') && fields.has(spec.slice('attributes.'.length))) {
    const key = spec.slice('attributes.'.length);
    return { kind: 'attribute', key, type: fields.get(key) as FieldType };
  }
  if (fields.has(spec)) return { kind: 'attribute', key: spec, type: fields.get(spec) as FieldType };
  return `"${spec}" is not a contact field, a declared attribute or a consent:<purpose>:<channel> column`;
}

/** What a header name means without `--map`: a field, a declared attribute, a consent column, or nothing known. */
function guessTarget(name: string, fields: Map<string, FieldType>, folded: Map<string, string>): Target | undefined {
  if (/^consent:/i.test(name)) {
    const target = readTarget(name.replace(/^consent:/i, 'consent:'), fields);
    return typeof target === 'string' ? undefined : target;
  }
  if ((contactFields as readonly string[]).includes(name)) return { kind: 'field', field: name as ContactField };
  if (fields.has(name)) return { kind: 'attribute', key: name, type: fields.get(name) as FieldType };
  const f = fold(name);
  const field = aliasIndex.get(f);
  if (field) return { kind: 'field', field };
  const key = folded.get(f);
  if (key) return { kind: 'attribute', key, type: fields.get(key) as FieldType };
  return undefined;
}

const describe = (t: Target): string =>
  t.kind === 'field'
    ? t.field
    : t.kind === 'attribute'
      ? `attributes.${t.key}`
      : t.kind === 'consent'
        ? `consent:${t.purpose}:${t.channel}${t.part === 'value' ? '' : `:${t.part}`}`
        : '(ignored)';

/**
 * Maps a header: every column must mean something (or `ignoreUnknown` drops the others), no two
 * columns may fill the same thing, and there must be an email or a phone. Throws
 * `import_columns_invalid` naming every problem at once.
 */
export function mapColumns(header: string[], context: MappingContext, options: MappingOptions = {}): Mapping {
  const fields = new Map(context.fields.map((f) => [f.key, f.type as FieldType]));
  const foldedFields = new Map(context.fields.map((f) => [fold(f.key), f.key]));
  const problems: FieldError[] = [];

  // --map first: each names a header column (exactly, or folded) and a target.
  const mapped = new Map<number, Target>();
  for (const [from, to] of Object.entries(options.map ?? {})) {
    let index = header.indexOf(from);
    if (index < 0) index = header.findIndex((h) => fold(h) === fold(from) && fold(from) !== '');
    if (index < 0) {
      problems.push({ path: `/map/${from}`, message: `there is no column "${from}" (the columns are: ${header.join(', ')})` });
      continue;
    }
    const target = readTarget(to, fields);
    if (typeof target === 'string') problems.push({ path: `/map/${from}`, message: target });
    else mapped.set(index, target);
  }

  const mapping: Mapping = { header, fields: {}, attributes: [], consents: [], ignored: [], warnings: [], targets: {} };
  const filledBy = new Map<string, string>();
  const consentsByKey = new Map<string, ConsentColumns>();
  const pendingParts: Array<{ key: string; part: ConsentPart; index: number; name: string }> = [];
  const unknown: string[] = [];

  header.forEach((rawName, index) => {
    const name = rawName === '' ? `(column ${index + 1})` : rawName;
    const target = mapped.get(index) ?? (rawName === '' ? undefined : guessTarget(rawName, fields, foldedFields));
    if (!target) {
      if (options.ignoreUnknown) mapping.ignored.push(name);
      else unknown.push(name);
      return;
    }
    if (target.kind === 'ignore') {
      mapping.ignored.push(name);
      return;
    }
    const what = describe(target);
    const earlier = filledBy.get(what);
    if (earlier !== undefined) {
      problems.push({
        path: `/columns/${name}`,
        message: `"${earlier}" and "${name}" both fill ${what}: map one of them elsewhere or to "-"`,
      });
      return;
    }
    filledBy.set(what, name);
    mapping.targets[name] = what;
    if (target.kind === 'field') mapping.fields[target.field] = { index, name };
    else if (target.kind === 'attribute') mapping.attributes.push({ index, name, key: target.key, type: target.type });
    else if (target.kind === 'consent') {
      const key = `${target.purpose}:${target.channel}`;
      if (target.part === 'value') {
        consentsByKey.set(key, { purpose: target.purpose, channel: target.channel, column: name, value: index, parts: {} });
      } else pendingParts.push({ key, part: target.part, index, name });
    }
  });

  for (const p of pendingParts) {
    const consent = consentsByKey.get(p.key);
    if (!consent) {
      problems.push({
        path: `/columns/${p.name}`,
        message: `"${p.name}" describes consent:${p.key} but the file has no consent:${p.key} column (yes/no)`,
      });
    } else consent.parts[p.part] = { index: p.index, name: p.name };
  }

  // An unknown purpose or channel is a fault of the rows that use it (they are rejected), not of the file.
  const purposes = new Map(context.purposes.map((p) => [p.key, p]));
  const channels = new Map(context.channels.map((c) => [c.key, c]));
  for (const consent of consentsByKey.values()) {
    const purpose = purposes.get(consent.purpose);
    const channel = channels.get(consent.channel);
    if (!purpose) consent.problem = `unknown purpose "${consent.purpose}"`;
    else if (!channel) consent.problem = `unknown channel "${consent.channel}"`;
    else if (!purpose.channels.includes(channel.key)) {
      consent.problem = `purpose "${purpose.key}" does not use channel "${channel.key}" (it uses ${purpose.channels.join(', ')})`;
    } else consent.resolved = { purpose, channel };
    if (consent.problem) mapping.warnings.push(`${consent.column}: ${consent.problem}; every row with a value there is rejected`);
    mapping.consents.push(consent);
  }

  if (unknown.length > 0) {
    problems.unshift({
      path: '/columns',
      message: `unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `"${u}"`).join(', ')}: map ${
        unknown.length > 1 ? 'them' : 'it'
      } with --map "${unknown[0]}=<field>" (a contact field, a declared attribute or consent:<purpose>:<channel>), or pass --ignore-unknown`,
    });
  }
  if (!mapping.fields.email && !mapping.fields.phone && problems.length === 0) {
    problems.push({
      path: '/columns',
      message: 'no column holds an email or a phone: a contact needs one (map it with --map "<column>=email")',
    });
  }
  if (problems.length > 0) {
    throw new DomainError('import_columns_invalid', problems.map((p) => p.message).join('; '), problems);
  }
  return mapping;
}
