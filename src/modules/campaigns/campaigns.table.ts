import type { Generated } from 'kysely';

export interface CampaignsTable {
  key: string;
  name: string;
  segment_key: string;
  purposes: string; // JSON: purpose keys
  channel_key: string;
  templates: string; // JSON: { first, reminder }
  start_at: string;
  cadence_days: number;
  deadline: string;
  max_sends: number | null;
  confirmation: string; // button | landing
  at_deadline: string; // report | purge
  add_newcomers: number;
  status: string; // draft | running | paused | cancelled | closed
  launch_report: string | null; // JSON
  launched_at: string | null;
  closed_at: string | null;
  created_at: string;
  updated_at: string;
}

/** The audience frozen at launch: included members have no exclusion reason. */
export interface CampaignAudienceTable {
  campaign_key: string;
  contact_id: string;
  excluded_reason: string | null;
  added_at: string;
}

export interface CampaignStepsTable {
  campaign_key: string;
  step: number;
  due_at: string;
  enqueued_at: string;
  queued: number;
  completed_at: string | null;
}

export interface DeliveriesTable {
  id: Generated<number>;
  campaign_key: string;
  step: number;
  contact_id: string;
  template: string; // first | reminder
  status: string; // queued | sending | sent | stored | failed | cancelled
  attempts: Generated<number>;
  send_after: string;
  claimed_by: string | null;
  claimed_until: string | null;
  sent_at: string | null;
  /** The provider's id for the message (email Message-ID, SMS provider id): matches receipts and bounces. */
  provider_ref: string | null;
  last_error: string | null;
  clicked_at: string | null;
  confirmed_at: string | null;
  unsubscribed_at: string | null;
  bounced_at: string | null;
  created_at: string;
}

export interface CampaignPurgesTable {
  id: string;
  campaign_key: string;
  status: string; // running | completed
  counts: string; // JSON: by reason
  erased: number;
  started_at: string;
  completed_at: string | null;
}
