export interface WebhooksTable {
  id: string;
  url: string;
  events: string; // JSON: event types
  /** The signing secret, encrypted with a key derived from the server secret. */
  secret: string;
  created_at: string;
  deleted_at: string | null;
}

/** The webhook outbox: written in the transaction of the change it announces. */
export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  payload: string; // JSON body as sent: { id, type, createdAt, data }
  status: string; // pending | delivered | failed
  attempts: number;
  next_attempt_at: string;
  last_status: number | null;
  last_error: string | null;
  history: string; // JSON: [{ at, status, error, ms }]
  created_at: string;
  delivered_at: string | null;
}
