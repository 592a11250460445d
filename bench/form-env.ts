// The configuration of the form bench's server, shared by the bench (which prepares the
// database) and the server process: a public-POST rate limit high enough for the bench
// (RATE_LIMIT_PER_MINUTE 100,000; every request comes from 127.0.0.1), no SMTP (the outbox).
export const FORM_BENCH_PUBLIC_URL = 'https://consent.shop.example';

export const formBenchEnv = (file: string): Record<string, string> => ({
  DATABASE_URL: `sqlite:${file}`,
  ASSENT_SECRET: 'bench-form-secret-0123456789abcdefghijklmnopqrstuvwxyz',
  PUBLIC_URL: FORM_BENCH_PUBLIC_URL,
  LOG_LEVEL: 'warn',
  SCHEDULER_INTERVAL_SECONDS: '0',
  RATE_LIMIT_PER_MINUTE: '100000',
});
