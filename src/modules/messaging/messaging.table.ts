export interface MessagesTable {
  id: string;
  contact_id: string | null;
  kind: string;
  channel_key: string;
  to_address: string | null;
  template_key: string;
  /** Marketing: the purpose it is sent for, checked again just before sending. */
  purpose_key: string | null;
  locale: string;
  subject: string | null;
  html: string | null;
  body: string;
  headers: string; // JSON
  status: string; // queued | sending | sent | stored | failed | cancelled
  attempts: number;
  last_error: string | null;
  message_id: string;
  created_at: string;
  send_after: string;
  sent_at: string | null;
}

export interface TemplatesTable {
  key: string;
  channel_kind: string; // email | sms
  category: string; // transactional | marketing
  variants: string; // JSON { fr: { subject, html, text } | { body }, en: … }
  builtin: number;
  created_at: string;
  updated_at: string;
}
