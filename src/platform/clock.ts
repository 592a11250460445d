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

export const addDays = (d: Date | string, days: number): Date =>
  new Date(new Date(d).getTime() + days * 86_400_000);

export function parseInstant(value: string): Date | undefined {
  // Accept full ISO date-times with an offset or Z, and plain dates (taken as UTC midnight).
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/.test(value)) {
    return undefined;
  }
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}
