export { messagingRoutes } from './messaging.routes.ts';
export {
  type DispatchResult,
  dispatchDue,
  type EmailRequest,
  enqueueEmail,
  eraseMessagesOf,
  getOutboxMessage,
  kickDispatch,
  lastMessageAt,
  listOutbox,
} from './messaging.service.ts';
export { builtinTemplates } from './templates.builtin.ts';
export { ensureBuiltinTemplates, getTemplate, renderEmail, renderSms, type Template } from './templates.service.ts';
