export { authenticate, createKey, listKeys, type Principal, revokeKey, scopeAllows, scopes } from './auth.service.ts';
