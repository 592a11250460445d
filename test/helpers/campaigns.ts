// A re-permission campaign over everyone without an email consent, starting now and ending in
// 30 days: the setup shared by the tests that drive campaign workers (durability, leases).
import { createCampaign } from '../../src/modules/campaigns/index.ts';
import { iso } from '../../src/platform/clock.ts';
import type { AppContext } from '../../src/platform/context.ts';

const DAY = 86_400_000;

/** Declares the segment "no-email-consent" and creates campaign `key` on it (not launched); answers its start. */
export async function createNoEmailConsentCampaign(ctx: AppContext, key: string, name: string): Promise<Date> {
  const now = iso(ctx.clock.now());
  await ctx.db.kysely
    .insertInto('segments')
    .values({
      key: 'no-email-consent',
      name: 'No email consent',
      filter: JSON.stringify({ consent: { purpose: 'commercial-email', channel: 'email', status: ['none'] } }),
      created_at: now,
      updated_at: now,
    })
    .execute();
  const start = ctx.clock.now();
  await createCampaign(ctx, {
    key,
    name,
    segment: 'no-email-consent',
    purposes: ['commercial-email'],
    channel: 'email',
    startAt: iso(start),
    deadline: iso(new Date(start.getTime() + 30 * DAY)),
  });
  return start;
}
