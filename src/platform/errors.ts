// One error model: domain errors carry a closed code and an HTTP status; the HTTP edge turns
// them into application/problem+json.

export const problemCodes = {
  validation_failed: { status: 400, title: 'The request is not valid' },
  bad_json: { status: 400, title: 'The body is not valid JSON' },
  payload_too_large: { status: 413, title: 'The body is too large' },
  unsupported_media_type: { status: 415, title: 'This content type is not accepted' },
  unauthorized: { status: 401, title: 'An API key is required' },
  forbidden: { status: 403, title: 'This API key may not do that' },
  not_found: { status: 404, title: 'Not found' },
  route_not_found: { status: 404, title: 'No such route' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  contact_not_found: { status: 404, title: 'No such contact' },
  contact_erased: { status: 410, title: 'This contact was erased' },
  contact_exists: { status: 409, title: 'A contact with this email or phone exists' },
  key_exists: { status: 409, title: 'This key is already taken' },
  unknown_purpose: { status: 422, title: 'Unknown purpose' },
  unknown_channel: { status: 422, title: 'Unknown channel' },
  unknown_field: { status: 422, title: 'Unknown field' },
  channel_not_in_purpose: { status: 422, title: 'This channel is not one of the purpose’s channels' },
  double_opt_in_requires_email: { status: 422, title: 'Double opt-in needs the email channel' },
  builtin_locked: { status: 422, title: 'A built-in item cannot change this way' },
  basis_switch_forbidden: { status: 409, title: 'The legal basis cannot change after a withdrawal' },
  undeclared_attribute: { status: 422, title: 'Attribute not declared' },
  invalid_attribute: { status: 422, title: 'Attribute of the wrong type' },
  invalid_email: { status: 422, title: 'Invalid email address' },
  invalid_phone: { status: 422, title: 'Invalid phone number' },
  contact_address_required: { status: 422, title: 'A contact needs an email or a phone' },
  no_address_for_channel: { status: 422, title: 'The contact has no address on this channel' },
  nothing_to_confirm: { status: 409, title: 'There is no pending consent to confirm' },
  occurred_in_future: { status: 422, title: 'occurredAt is in the future' },
  idempotency_conflict: { status: 409, title: 'Idempotency key reused with another request' },
  rate_limited: { status: 429, title: 'Too many requests' },
  template_missing_opt_out: { status: 422, title: 'A marketing template must offer an opt-out' },
  template_invalid: { status: 422, title: 'The template does not parse' },
  template_not_found: { status: 404, title: 'No such template' },
  message_not_found: { status: 404, title: 'No such message' },
  form_not_found: { status: 404, title: 'No such form' },
  contact_not_allowed: { status: 422, title: 'This person may not be contacted for this purpose on this channel' },
  purpose_required: { status: 422, title: 'A marketing message names the purpose it serves' },
  csrf_failed: { status: 403, title: 'The form expired or was not ours: reload the page and send it again' },
  origin_not_allowed: { status: 403, title: 'This origin may not post to this form' },
  form_changed: { status: 409, title: 'The form changed since it was shown: reload it and send it again' },
  consent_not_offered: { status: 422, title: 'This form offers no such choice' },
  terms_not_accepted: { status: 422, title: 'This form is sent only with its terms accepted' },
  redirect_not_allowed: { status: 422, title: 'The redirect URL is not on an allowed origin' },
  address_field_required: { status: 422, title: 'A form asks for an email or a phone' },
  field_required_for_channel: { status: 422, title: 'A channel of this form needs a field the form does not ask for' },
  campaign_not_found: { status: 404, title: 'No such campaign' },
  campaign_state: { status: 409, title: 'The campaign cannot do that in its current state' },
  campaign_invalid: { status: 422, title: 'The campaign is not valid' },
  campaign_templates_incomplete: {
    status: 422,
    title: 'A re-permission template needs the confirm link and an opt-out (unsubscribe link, or STOP for SMS)',
  },
  purge_not_allowed: { status: 409, title: 'This campaign cannot be purged now' },
  hooks_not_configured: { status: 503, title: 'Provider callbacks are off: set HOOKS_SECRET' },
  bad_signature: { status: 401, title: 'The signature is missing, wrong or too old' },
  segment_invalid: { status: 400, title: 'The segment filter is not valid' },
  segment_not_found: { status: 404, title: 'No such segment' },
  webhook_url_invalid: { status: 422, title: 'A webhook URL is an absolute http(s) URL' },
  webhook_url_not_allowed: { status: 422, title: 'A webhook may not point at this server' },
  unknown_webhook_event: { status: 422, title: 'Unknown webhook event type' },
  webhook_not_found: { status: 404, title: 'No such webhook' },
  import_file_invalid: { status: 422, title: 'The file cannot be imported' },
  import_columns_invalid: { status: 422, title: 'The file’s columns do not map onto contacts and consents' },
  import_not_found: { status: 404, title: 'No such import' },
  internal: { status: 500, title: 'Internal error' },
} as const;

export type ProblemCode = keyof typeof problemCodes;

export interface FieldError {
  path: string;
  message: string;
}

export class DomainError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly fields?: FieldError[];

  constructor(code: ProblemCode, detail?: string, fields?: FieldError[]) {
    super(detail ?? problemCodes[code].title);
    this.name = 'DomainError';
    this.code = code;
    this.status = problemCodes[code].status;
    if (fields) this.fields = fields;
  }
}

export const problemType = (code: ProblemCode): string => `urn:assent:problem:${code}`;

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  errors?: FieldError[];
}

export function toProblem(error: DomainError): Problem {
  const problem: Problem = {
    type: problemType(error.code),
    title: problemCodes[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
  };
  if (error.fields) problem.errors = error.fields;
  return problem;
}
