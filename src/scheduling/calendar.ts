import { Cron, CronPattern } from 'croner';
import { AppError } from '../core/index.js';

/** A daily window in a schedule's time zone, `HH:MM` 24-hour; `start > end` crosses midnight. */
export interface DailyWindow {
  start: string;
  end: string;
}

export const DEFAULT_TIME_ZONE = 'UTC';
const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Minutes since local midnight for `HH:MM`, or undefined when malformed. */
export function parseHhMm(text: unknown): number | undefined {
  const m = typeof text === 'string' ? HH_MM.exec(text) : null;
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    } catch (err) {
      throw new AppError(
        'VALIDATION_FAILED',
        `Unknown time zone "${timeZone}": use an IANA name such as Europe/Berlin`,
        {
          cause: err,
          details: { field: 'timeZone' },
        },
      );
    }
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is a time zone name this runtime knows. */
export function isKnownTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Local wall-clock minutes since midnight of instant `atMs` in `timeZone`. */
export function localMinuteOfDay(atMs: number, timeZone: string): number {
  let hour = 0;
  let minute = 0;
  for (const p of formatter(timeZone).formatToParts(atMs)) {
    if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return hour * 60 + minute;
}

/** True when local time `minute` lies in `[start, end)`, wrapping past midnight when start > end. */
function minuteInWindow(minute: number, start: number, end: number): boolean {
  return start < end ? minute >= start && minute < end : minute >= start || minute < end;
}

/** Start and end of a window in minutes since local midnight. @throws {AppError} VALIDATION_FAILED when malformed. */
function windowMinutes(window: DailyWindow): { start: number; end: number } {
  const start = parseHhMm(window.start);
  const end = parseHhMm(window.end);
  if (start === undefined || end === undefined) {
    throw new AppError('VALIDATION_FAILED', 'window must be {start: "HH:MM", end: "HH:MM"} in 24-hour time', {
      details: { field: 'window' },
    });
  }
  return { start, end };
}

/** True when instant `atMs` lies inside `window` (local time in `timeZone`). */
export function inWindow(atMs: number, window: DailyWindow, timeZone: string): boolean {
  const { start, end } = windowMinutes(window);
  return minuteInWindow(localMinuteOfDay(atMs, timeZone), start, end);
}

const CRON_CACHE_SIZE = 256;
const crons = new Map<string, Cron>();

/** A paused, callback-less croner job (it never sets a timer). Cached: parsing is the costly part. */
function cronFor(pattern: string, timeZone: string): Cron {
  const key = `${timeZone}\u0000${pattern}`;
  let job = crons.get(key);
  if (job === undefined) {
    try {
      job = new Cron(pattern, { timezone: timeZone, paused: true, mode: '5-or-6-parts' });
    } catch (err) {
      throw new AppError('VALIDATION_FAILED', `Invalid cron "${pattern}": ${(err as Error).message}`, {
        cause: err,
        details: { field: 'cron' },
      });
    }
    formatter(timeZone);
    if (crons.size >= CRON_CACHE_SIZE) crons.clear();
    crons.set(key, job);
  }
  return job;
}

/**
 * Validates a cron pattern in `timeZone` and counts the distinct seconds and minutes it fires at. With one of
 * each, two fires are always at least an hour apart.
 * @throws {AppError} VALIDATION_FAILED for a malformed pattern or an unknown time zone.
 */
export function cronFieldCounts(pattern: string, timeZone: string): { seconds: number; minutes: number } {
  cronFor(pattern, timeZone);
  const parsed = new CronPattern(pattern, timeZone, { mode: '5-or-6-parts' });
  const count = (xs: number[]) => xs.filter((x) => x !== 0).length;
  return { seconds: count(parsed.second), minutes: count(parsed.minute) };
}

/**
 * The first time `pattern` fires strictly after `afterMs` (whole seconds), evaluated in `timeZone` with croner's DST
 * rules: a fixed-time job whose time falls in a spring-forward gap fires at the first valid time after the gap; on
 * fall-back it fires once, at the first occurrence. `undefined` when it never fires again.
 * Deterministic: croner only uses its own clock when no reference date is given, and one always is.
 */
export function cronNextMs(pattern: string, timeZone: string, afterMs: number): number | undefined {
  const next = cronFor(pattern, timeZone).nextRun(new Date(afterMs));
  return next === null ? undefined : next.getTime();
}

/** Up to `count` fire times of `pattern` strictly after `afterMs`, ascending (fewer if it stops firing). */
export function cronNextRunsMs(pattern: string, timeZone: string, afterMs: number, count: number): number[] {
  return cronFor(pattern, timeZone)
    .nextRuns(count, new Date(afterMs))
    .map((d) => d.getTime());
}

/**
 * The earliest instant ≥ `atMs` inside `window`. When the window start falls in a DST gap that swallows the whole
 * window that day, the next day's window is used.
 */
export function moveIntoWindow(atMs: number, window: DailyWindow, timeZone: string): number {
  if (inWindow(atMs, window, timeZone)) return atMs;
  const { start } = windowMinutes(window);
  const startCron = `${start % 60} ${Math.floor(start / 60)} * * *`;
  // First start at or after atMs (cronNextMs is strictly after its reference, at whole seconds).
  let at = cronNextMs(startCron, timeZone, atMs - 1) as number;
  while (!inWindow(at, window, timeZone)) at = cronNextMs(startCron, timeZone, at) as number;
  return at;
}
