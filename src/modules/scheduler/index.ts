export { type JobResult, runDueJobs } from './scheduler.service.ts';
