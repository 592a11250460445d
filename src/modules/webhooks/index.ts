export { dispatchWebhooks, retryDelayMs, WEBHOOK_RETRY_WINDOW_MS, type WebhookDispatchResult } from './webhooks.dispatch.ts';
export { webhookRoutes } from './webhooks.routes.ts';
export { signatureHeader } from './webhooks.secret.ts';
export {
  checkWebhookUrl,
  createWebhook,
  deleteWebhook,
  emitWebhookEvent,
  emitWebhookEvents,
  listWebhookDeliveries,
  listWebhooks,
  registerWebhooks,
  type Webhook,
  type WebhookDelivery,
  type WebhookEvent,
  type WebhookEventData,
  type WebhookEventType,
  webhookEventTypes,
} from './webhooks.service.ts';
