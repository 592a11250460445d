// SMS quiet hours (RULES 24): sends outside the window wait for the next one, DST included.
import { describe, expect, it } from 'vitest';
import { parseQuietHours, type QuietHours } from '../src/config.ts';
import { isSendTime, nextSendTime } from '../src/platform/quiet-hours.ts';

const paris = parseQuietHours('Mon-Sat 08:00-20:00', 'Europe/Paris') as QuietHours;
const next = (at: string, q: QuietHours = paris) => nextSendTime(new Date(at), q).toISOString();

describe('nextSendTime', () => {
  it('moves a Sunday send to Monday 08:00 Paris time', () => {
    // Sunday 22 November 2026, 15:00 in Paris (UTC+1).
    expect(next('2026-11-22T14:00:00.000Z')).toBe('2026-11-23T07:00:00.000Z');
  });

  it('moves a Saturday 20:30 send to Monday 08:00', () => {
    expect(next('2026-11-21T19:30:00.000Z')).toBe('2026-11-23T07:00:00.000Z');
  });

  it('moves a Tuesday 07:00 send to 08:00 the same day', () => {
    expect(next('2026-11-24T06:00:00.000Z')).toBe('2026-11-24T07:00:00.000Z');
  });

  it('keeps a send that is inside the window', () => {
    const at = '2026-11-24T10:17:33.250Z';
    expect(next(at)).toBe(at);
    expect(isSendTime(new Date(at), paris)).toBe(true);
  });

  it('treats the end of the window as outside and the start as inside', () => {
    expect(isSendTime(new Date('2026-11-24T19:00:00.000Z'), paris)).toBe(false); // 20:00 Paris
    expect(isSendTime(new Date('2026-11-24T18:59:59.000Z'), paris)).toBe(true);
    expect(isSendTime(new Date('2026-11-24T07:00:00.000Z'), paris)).toBe(true); // 08:00 Paris
    expect(next('2026-11-24T19:00:00.000Z')).toBe('2026-11-25T07:00:00.000Z');
  });

  it('finds Monday 08:00 in summer time after the spring-forward weekend', () => {
    // Clocks go forward on Sunday 29 March 2026 (02:00 → 03:00): Monday 08:00 is 06:00 UTC.
    expect(next('2026-03-28T19:30:00.000Z')).toBe('2026-03-30T06:00:00.000Z');
    expect(next('2026-03-29T12:00:00.000Z')).toBe('2026-03-30T06:00:00.000Z');
  });

  it('finds Monday 08:00 in winter time after the fall-back weekend', () => {
    // Clocks go back on Sunday 25 October 2026 (03:00 → 02:00): Monday 08:00 is 07:00 UTC.
    expect(next('2026-10-24T18:30:00.000Z')).toBe('2026-10-26T07:00:00.000Z');
  });

  it('keeps the window on wall-clock time on the day the clocks change', () => {
    const sunday: QuietHours = { days: [7], start: '08:00', end: '20:00', timeZone: 'Europe/Paris' };
    // Saturday evening before the spring change: Sunday 08:00 is already summer time (06:00 UTC).
    expect(next('2026-03-28T21:00:00.000Z', sunday)).toBe('2026-03-29T06:00:00.000Z');
    expect(isSendTime(new Date('2026-03-29T17:59:00.000Z'), sunday)).toBe(true); // 19:59 CEST
    expect(isSendTime(new Date('2026-03-29T18:00:00.000Z'), sunday)).toBe(false); // 20:00 CEST
  });

  it('starts a window that falls in the skipped hour when the clocks jump', () => {
    const night: QuietHours = { days: [7], start: '02:30', end: '05:00', timeZone: 'Europe/Paris' };
    // 02:30 does not exist on 29 March 2026 in Paris: the window opens at the jump (01:00 UTC).
    expect(next('2026-03-28T12:00:00.000Z', night)).toBe('2026-03-29T01:00:00.000Z');
  });

  it('takes the first of the two readings when the clocks go back', () => {
    const night: QuietHours = { days: [7], start: '02:30', end: '05:00', timeZone: 'Europe/Paris' };
    // 02:30 happens twice on 25 October 2026: first at 00:30 UTC (summer time).
    expect(next('2026-10-24T12:00:00.000Z', night)).toBe('2026-10-25T00:30:00.000Z');
  });

  it('works across a month and a year end, and in other zones', () => {
    // Thursday 31 December 2026, 21:00 in Paris → Friday 1 January 2027, 08:00.
    expect(next('2026-12-31T20:00:00.000Z')).toBe('2027-01-01T07:00:00.000Z');
    const ny = parseQuietHours('Mon-Fri 09:00-17:00', 'America/New_York') as QuietHours;
    // Friday 17:30 in New York (UTC-5) → Monday 09:00.
    expect(next('2026-11-27T22:30:00.000Z', ny)).toBe('2026-11-30T14:00:00.000Z');
  });

  it('refuses a window that allows no day', () => {
    expect(() => nextSendTime(new Date(), { days: [], start: '08:00', end: '20:00', timeZone: 'UTC' })).toThrow(RangeError);
  });
});
