export { hookRoutes } from './hooks.routes.ts';
export {
  type EmailEvent,
  type InboundSms,
  receiveSms,
  recordEmailEvents,
  recordSmsStatus,
  replyIntent,
  replyWord,
} from './hooks.service.ts';
export { checkHookSignature, HOOK_TOLERANCE_SECONDS, signHookBody } from './hooks.signature.ts';
