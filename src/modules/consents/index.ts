export { type Decision, type DecisionRequest, decide, reasonCodes } from './consents.decisions.ts';
export { eraseEvidence, GENESIS_HASH } from './consents.ledger.ts';
export { listEventsOfContact, listStatesOfContact as consentStatesOf, updateEventEvidence } from './consents.repository.ts';
export { consentRoutes } from './consents.routes.ts';
export { type ConsentEvent, type ConsentInput, recordConsent, recordConsents } from './consents.service.ts';
export { expireConsents, expirePending, rebuildState, takeCheckpoint, verifyLedger } from './consents.verify.ts';
