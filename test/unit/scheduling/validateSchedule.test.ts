import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/core/index.js';
import { validateSchedule } from '../../../src/scheduling/index.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function failure(input: unknown, options?: { minIntervalMs?: number }) {
  try {
    validateSchedule(input, options);
  } catch (err) {
    expect(hasCode(err, 'VALIDATION_FAILED')).toBe(true);
    return err as Error & { details: { fields?: string[]; problems?: string[]; field?: string } };
  }
  throw new Error('expected validateSchedule to throw');
}

describe('validateSchedule', () => {
  it.each<{ case: string; input: Record<string, unknown>; minIntervalMs?: number }>([
    {
      case: 'a weekly cron in Berlin with window, guard and enabled',
      input: {
        cron: '0 3 * * SUN',
        timeZone: 'Europe/Berlin',
        window: { start: '01:00', end: '05:00' },
        maxAgeMs: 40 * DAY,
        enabled: true,
      },
    },
    { case: 'a 30-day interval', input: { intervalMs: 30 * DAY } },
    { case: 'exactly one hour', input: { intervalMs: HOUR, maxAgeMs: HOUR } },
    { case: 'a nickname', input: { cron: '@daily' } },
    { case: 'a six-field cron', input: { cron: '0 0 3 * * *' } },
    { case: 'every two hours', input: { cron: '0 */2 * * *' } },
    { case: 'a window crossing midnight', input: { intervalMs: DAY, window: { start: '22:00', end: '02:00' } } },
    { case: 'a paused schedule', input: { intervalMs: DAY, enabled: false } },
    { case: 'a dev-demo interval', input: { intervalMs: 120_000 }, minIntervalMs: 60_000 },
    { case: 'a dev-demo cron', input: { cron: '*/2 * * * *' }, minIntervalMs: 60_000 },
    { case: 'a leap-day cron with two minutes', input: { cron: '0,30 0 29 2 *' }, minIntervalMs: 60_000 },
  ])('accepts $case', ({ input, minIntervalMs }) => {
    // Act
    const out = validateSchedule(input, { minIntervalMs });
    // Assert
    expect(out).toEqual(input);
    expect(out).not.toBe(input);
  });

  it('drops nothing but copies the window', () => {
    // Arrange
    const input = { intervalMs: DAY, window: { start: '01:00', end: '05:00' } };
    // Act
    const out = validateSchedule(input);
    // Assert
    expect(out.window).not.toBe(input.window);
  });

  it.each<{ case: string; input: unknown; field: string; msg: RegExp; minIntervalMs?: number }>([
    { case: 'null', input: null, field: 'schedule', msg: /expected an object/ },
    { case: 'an array', input: [], field: 'schedule', msg: /expected an object/ },
    { case: 'a string', input: '0 3 * * *', field: 'schedule', msg: /expected an object/ },
    { case: 'a typo', input: { intervalMS: DAY }, field: 'intervalMS', msg: /unknown field "intervalMS"/ },
    { case: 'neither cron nor interval', input: {}, field: 'cron', msg: /set either cron .* or intervalMs/ },
    { case: 'both cron and interval', input: { cron: '0 3 * * *', intervalMs: DAY }, field: 'cron', msg: /not both/ },
    { case: 'a malformed cron', input: { cron: 'every day' }, field: 'cron', msg: /Invalid cron "every day"/ },
    {
      case: 'a seven-field cron',
      input: { cron: '0 0 3 * * * 2026' },
      field: 'cron',
      msg: /requires exactly 5 or 6 parts/,
    },
    { case: 'a cron out of range', input: { cron: '0 25 * * *' }, field: 'cron', msg: /Invalid cron/ },
    { case: 'a cron that never fires', input: { cron: '0 0 30 2 *' }, field: 'cron', msg: /never fires/ },
    {
      case: 'a cron every five minutes',
      input: { cron: '*/5 * * * *' },
      field: 'cron',
      msg: /fires 5 min apart, but Key Protect allows one rotation per key every 1 h/,
    },
    {
      case: 'a cron twice an hour via seconds',
      input: { cron: '0,30 0 * * * *' },
      field: 'cron',
      msg: /fires 30000 ms apart/,
    },
    {
      case: 'an hourly cron under a two-hour limit',
      input: { cron: '0 * * * *' },
      field: 'cron',
      msg: /fires 1 h apart, .* every 2 h/,
      minIntervalMs: 2 * HOUR,
    },
    { case: 'an empty cron', input: { cron: '  ' }, field: 'cron', msg: /non-empty string/ },
    { case: 'a numeric cron', input: { cron: 5 }, field: 'cron', msg: /non-empty string/ },
    {
      case: 'an unknown time zone',
      input: { cron: '0 3 * * *', timeZone: 'Mars/Olympus' },
      field: 'timeZone',
      msg: /unknown time zone "Mars\/Olympus"/,
    },
    {
      case: 'a numeric time zone',
      input: { intervalMs: DAY, timeZone: 2 },
      field: 'timeZone',
      msg: /unknown time zone 2/,
    },
    {
      case: 'an interval below one hour',
      input: { intervalMs: 30 * 60_000 },
      field: 'intervalMs',
      msg: /intervalMs is 30 min, below 1 h: Key Protect allows one rotation per key per 1 h/,
    },
    { case: 'a negative interval', input: { intervalMs: -1 }, field: 'intervalMs', msg: /positive integer/ },
    {
      case: 'a fractional interval',
      input: { intervalMs: 1.5 * HOUR + 0.5 },
      field: 'intervalMs',
      msg: /positive integer/,
    },
    { case: 'a string interval', input: { intervalMs: '1h' }, field: 'intervalMs', msg: /positive integer/ },
    { case: 'an odd sub-minute interval', input: { intervalMs: 1500 }, field: 'intervalMs', msg: /1500 ms/ },
    {
      case: 'a one-digit hour',
      input: { intervalMs: DAY, window: { start: '1:00', end: '05:00' } },
      field: 'window',
      msg: /HH:MM/,
    },
    {
      case: 'hour 24',
      input: { intervalMs: DAY, window: { start: '01:00', end: '24:00' } },
      field: 'window',
      msg: /HH:MM/,
    },
    {
      case: 'a window without end',
      input: { intervalMs: DAY, window: { start: '01:00' } },
      field: 'window',
      msg: /HH:MM/,
    },
    { case: 'a null window', input: { intervalMs: DAY, window: null }, field: 'window', msg: /HH:MM/ },
    {
      case: 'an empty window',
      input: { intervalMs: DAY, window: { start: '03:00', end: '03:00' } },
      field: 'window',
      msg: /start and end are equal/,
    },
    {
      case: 'a max age below one hour',
      input: { intervalMs: DAY, maxAgeMs: 60_000 },
      field: 'maxAgeMs',
      msg: /maxAgeMs is 1 min/,
    },
    {
      case: 'a max age shorter than the interval',
      input: { intervalMs: 2 * DAY, maxAgeMs: DAY },
      field: 'maxAgeMs',
      msg: /shorter than intervalMs/,
    },
    {
      case: 'a non-boolean enabled',
      input: { intervalMs: DAY, enabled: 'yes' },
      field: 'enabled',
      msg: /true or false/,
    },
  ])('rejects $case', ({ input, field, msg, minIntervalMs }) => {
    // Act
    const err = failure(input, { minIntervalMs });
    // Assert
    expect(err.message).toMatch(/^Invalid schedule: /);
    expect(err.message).toMatch(msg);
    expect([...(err.details.fields ?? []), err.details.field]).toContain(field);
  });

  it('reports every problem at once', () => {
    // Act
    const err = failure({ intervalMs: 60_000, window: { start: 'x', end: 'y' }, enabled: 1, extra: true });
    // Assert
    expect(err.details.fields?.sort()).toEqual(['enabled', 'extra', 'intervalMs', 'window']);
    expect(err.details.problems).toHaveLength(4);
  });

  it('does not check a cron against an unknown time zone twice', () => {
    // Act
    const err = failure({ cron: 'bad', timeZone: 'Nowhere/City' });
    // Assert
    expect(err.details.fields).toEqual(['timeZone']);
  });
});
