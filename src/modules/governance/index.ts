export { governanceRoutes } from './governance.routes.ts';
export { eraseContact } from './governance.service.ts';
