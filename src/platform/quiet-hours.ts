// When an SMS may leave (RULES 24): a weekly window in a time zone. Sends outside it are deferred
// to the start of the next window, never dropped. Wall-clock arithmetic goes through
// Intl.DateTimeFormat so that daylight-saving changes fall where the time zone puts them.
import type { QuietHours } from '../config.ts';

interface WallTime {
  year: number;
  month: number; // 1–12
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The wall-clock reading of an instant in a time zone. */
function wallTime(at: number, timeZone: string): WallTime {
  const parts: Record<string, number> = {};
  for (const p of formatterFor(timeZone).formatToParts(new Date(at))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return {
    year: parts.year as number,
    month: parts.month as number,
    day: parts.day as number,
    // Some engines still print midnight as 24 with h23; it is hour 0 of that day.
    hour: (parts.hour as number) % 24,
    minute: parts.minute as number,
    second: parts.second as number,
  };
}

/** A wall time read as if it were UTC: comparable numbers for wall-clock readings. */
const asUtc = (w: WallTime) => Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);

/** Offset of the zone from UTC at an instant, in ms (Paris in winter: +3 600 000). */
const offsetAt = (at: number, timeZone: string) => asUtc(wallTime(at, timeZone)) - Math.floor(at / 1000) * 1000;

/**
 * The first instant whose wall-clock reading in the zone is at or after the wanted one: the
 * wall time itself when it exists (the earlier one when a fall-back repeats it), the moment the
 * clocks jump when a spring-forward skips it.
 */
function instantOf(wanted: WallTime, timeZone: string): number {
  const local = asUtc(wanted);
  const halfDay = 12 * 3_600_000;
  const candidates = [...new Set([local - offsetAt(local - halfDay, timeZone), local - offsetAt(local + halfDay, timeZone)])].sort(
    (a, b) => a - b,
  );
  for (const c of candidates) if (asUtc(wallTime(c, timeZone)) === local) return c;
  // In a gap: search between the candidates for the jump (the first reading at or after `local`).
  let lo = (candidates[0] as number) - halfDay;
  let hi = (candidates[candidates.length - 1] as number) + halfDay;
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (asUtc(wallTime(mid, timeZone)) >= local) hi = mid;
    else lo = mid;
  }
  return hi;
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** ISO weekday of a calendar date: 1 = Monday … 7 = Sunday. */
const weekdayOf = (year: number, month: number, day: number) => ((new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 6) % 7) + 1;

function checkWindow(q: QuietHours): void {
  if (q.days.length === 0) throw new RangeError('Quiet hours allow no day at all: no SMS could ever be sent');
  if (minutesOf(q.start) >= minutesOf(q.end)) throw new RangeError(`Quiet hours start (${q.start}) must come before their end (${q.end})`);
}

/** Whether an SMS may be sent at this instant. */
export function isSendTime(now: Date, q: QuietHours): boolean {
  checkWindow(q);
  const w = wallTime(now.getTime(), q.timeZone);
  const minute = w.hour * 60 + w.minute;
  return q.days.includes(weekdayOf(w.year, w.month, w.day)) && minute >= minutesOf(q.start) && minute < minutesOf(q.end);
}

/** `now` when an SMS may be sent now, otherwise the start of the next allowed window. */
export function nextSendTime(now: Date, q: QuietHours): Date {
  if (isSendTime(now, q)) return now;
  const today = wallTime(now.getTime(), q.timeZone);
  const start = minutesOf(q.start);
  for (let k = 0; k <= 7; k++) {
    // Calendar arithmetic on the date alone: Date.UTC rolls day 32 over into the next month.
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day + k));
    const [year, month, day] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
    if (!q.days.includes(weekdayOf(year, month, day))) continue;
    const at = instantOf({ year, month, day, hour: Math.floor(start / 60), minute: start % 60, second: 0 }, q.timeZone);
    if (at > now.getTime()) return new Date(at);
  }
  // Unreachable with at least one allowed day: a week always holds the next window start.
  throw new RangeError('No send window found within a week');
}
