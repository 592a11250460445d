// How one consent event moves the state of a (contact, purpose, channel): the live path and the
// replay from the ledger both use these functions.

export const statuses = ['granted', 'pending', 'refused', 'withdrawn', 'objected', 'expired', 'none'] as const;
export type Status = (typeof statuses)[number];

/** Stored actions (the ledger's words); API verbs map onto them. */
export const actionsByVerb = {
  grant: 'granted',
  confirm: 'confirmed',
  renew: 'renewed',
  refuse: 'refused',
  withdraw: 'withdrawn',
  object: 'objected',
} as const;
export type Verb = keyof typeof actionsByVerb;
export type Action = (typeof actionsByVerb)[Verb] | 'expired' | 'requested';

export const sourceTypes = [
  'api',
  'form',
  'double_opt_in',
  'preference_centre',
  'campaign',
  'unsubscribe',
  'sms_reply',
  'import',
  'admin',
  'system',
] as const;
export type SourceType = (typeof sourceTypes)[number];

/** Sources where the person acted themself: they count as an interaction (RULES 16). */
export const personSources: ReadonlySet<string> = new Set([
  'form',
  'double_opt_in',
  'preference_centre',
  'campaign',
  'unsubscribe',
  'sms_reply',
]);

/** An explicit, affirmative act by the person: may lift an unsubscribe or erasure suppression. */
export const isExplicitPersonGrant = (action: Action, source: string) =>
  (action === 'granted' || action === 'confirmed' || action === 'renewed') && personSources.has(source) && source !== 'unsubscribe';

export interface State {
  status: Status;
  since: string;
  expiresAt: string | null;
  confirmed: boolean;
  purposeVersion: number;
  lastEventId: string;
}

export interface Rules {
  /** The purpose asks for double opt-in and this channel is email. */
  doubleOptIn: boolean;
  expiryAfterDays: number | null;
}

export function statusAfter(prev: State | undefined, action: Action, rules: Rules, source: string): Status {
  switch (action) {
    case 'granted':
      // A yes through a campaign's mailed link proves the address, as a double opt-in does.
      if (!rules.doubleOptIn || source === 'double_opt_in' || source === 'campaign') return 'granted';
      return prev?.status === 'granted' && prev.confirmed ? 'granted' : 'pending';
    case 'confirmed':
    case 'renewed':
      return 'granted';
    case 'requested':
      return 'pending';
    case 'refused':
    case 'withdrawn':
    case 'objected':
    case 'expired':
      return action;
  }
}

export function confirmedAfter(prev: State | undefined, action: string, status: string, source: string): boolean {
  if (status !== 'granted') return false;
  if (action === 'confirmed' || action === 'renewed' || source === 'double_opt_in' || source === 'campaign') return true;
  return prev?.status === 'granted' && prev.confirmed;
}

export function expiresAfter(status: Status, action: Action, occurredAt: string, rules: Rules): string | null {
  if (status !== 'granted' || rules.expiryAfterDays === null) return null;
  if (action !== 'granted' && action !== 'confirmed' && action !== 'renewed') return null;
  return new Date(new Date(occurredAt).getTime() + rules.expiryAfterDays * 86_400_000).toISOString();
}

export interface LedgerFacts {
  id: string;
  action: string;
  status: string;
  sourceType: string;
  occurredAt: string;
  expiresAt: string | null;
  purposeVersion: number;
}

/**
 * Applies a recorded event to a state. An event that happened before the current state's
 * `since` (recorded late) is kept in the ledger but does not move the state.
 */
export function foldEvent(prev: State | undefined, e: LedgerFacts): State {
  if (prev && e.occurredAt < prev.since) return prev;
  return {
    status: e.status as Status,
    since: e.occurredAt,
    expiresAt: e.expiresAt,
    confirmed: confirmedAfter(prev, e.action, e.status, e.sourceType),
    purposeVersion: e.purposeVersion,
    lastEventId: e.id,
  };
}
