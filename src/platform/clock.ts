// Every read of "now" goes through a Clock, so scheduled work can run "as if it were" any time.

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told: tests and `scheduler run --at`. */
export class ManualClock implements Clock {
  #at: number;

  constructor(at: Date | string = new Date()) {
    this.#at = new Date(at).getTime();
  }

  now(): Date {
    return new Date(this.#at);
  }

  set(at: Date | string): void {
    this.#at = new Date(at).getTime();
  }

  advanceDays(days: number): void {
    this.#at += days * 86_400_000;
  }
}

/** Timestamps are stored as fixed-width ISO-8601 UTC strings: they sort as text on both stores. */
export const iso = (d: Date): string => d.toISOString();

export const addDays = (d: Date | string, days: number): Date => new Date(new Date(d).getTime() + days * 86_400_000);

export function parseInstant(value: string): Date | undefined {
  // Accept full ISO date-times with an offset or Z, and plain dates (taken as UTC midnight).
  const m = /^(\d{4})-(\d{2})-(\d{2})([T ](\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/.exec(value);
  if (!m) return undefined;
  // Date() rolls impossible dates over (2026-02-30 becomes 2 March, 24:00 the next day): refuse them.
  const n = (i: number) => Number(m[i] ?? 0);
  const [month, day] = [n(2), n(3)];
  const daysInMonth = new Date(Date.UTC(n(1), month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || n(5) > 23 || n(6) > 59 || n(8) > 59) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}
