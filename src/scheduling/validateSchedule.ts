import { AppError, type Schedule } from '../core/index.js';
import { cronFieldCounts, cronNextRunsMs, DEFAULT_TIME_ZONE, isKnownTimeZone, parseHhMm } from './calendar.js';
import { ROTATION_MIN_INTERVAL_MS } from './rotationRule.js';

/** Options for {@link validateSchedule}. */
export interface ValidateScheduleOptions {
  /** Shortest allowed time between scheduled rotations (default: Key Protect's one hour). The dev emulator may lower it. */
  minIntervalMs?: number;
}

const KEYS = new Set(['cron', 'intervalMs', 'timeZone', 'window', 'maxAgeMs', 'enabled']);
// Fixed reference for sampling cron fires, so validation is deterministic.
const SAMPLE_FROM_MS = Date.UTC(2026, 0, 1);
const SAMPLE_FIRES = 200;

const human = (ms: number): string =>
  ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms} ms`;

function checkCron(cron: string, timeZone: string, minIntervalMs: number, problems: string[]): void {
  let counts: { seconds: number; minutes: number };
  try {
    counts = cronFieldCounts(cron, timeZone);
  } catch (err) {
    problems.push((err as Error).message);
    return;
  }
  // One second and one minute value: fires are whole hours apart, enough for any limit up to an hour; otherwise
  // sample the shortest gap among the next fires from a fixed reference date.
  const wholeHours = counts.seconds === 1 && counts.minutes === 1 && minIntervalMs <= ROTATION_MIN_INTERVAL_MS;
  const fires = cronNextRunsMs(cron, timeZone, SAMPLE_FROM_MS, wholeHours ? 1 : SAMPLE_FIRES);
  if (fires.length === 0) {
    problems.push(`cron "${cron}" never fires (check day and month, e.g. 30 February)`);
    return;
  }
  const gap = Math.min(...fires.slice(1).map((t, i) => t - (fires[i] as number)));
  if (gap < minIntervalMs) {
    problems.push(
      `cron "${cron}" fires ${human(gap)} apart, but Key Protect allows one rotation per key every ${human(minIntervalMs)}`,
    );
  }
}

function checkDuration(name: string, v: unknown, minIntervalMs: number, problems: string[]): v is number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    problems.push(`${name} must be a positive integer of milliseconds`);
    return false;
  }
  if (v < minIntervalMs) {
    problems.push(
      `${name} is ${human(v)}, below ${human(minIntervalMs)}: Key Protect allows one rotation per key per ${human(minIntervalMs)}`,
    );
    return false;
  }
  return true;
}

/**
 * Checks a schedule and returns a clean copy with only the known fields. Reports every problem at once.
 *
 * Rules: exactly one of `cron` (5 or 6 fields, croner syntax, evaluated in `timeZone`) and `intervalMs`; a known IANA
 * `timeZone` (default UTC); `window` as `{start:'HH:MM', end:'HH:MM'}` with start ≠ end (start > end crosses
 * midnight); `intervalMs` and `maxAgeMs` not below the rotation limit, `maxAgeMs` not below `intervalMs`; a cron
 * that fires at all and not more often than the limit (one rotation per key per hour,
 * https://cloud.ibm.com/docs/key-protect?topic=key-protect-key-rotation); `enabled` boolean; no unknown fields.
 *
 * @throws {AppError} VALIDATION_FAILED listing every problem (`details.problems`, `details.fields`).
 */
export function validateSchedule(input: unknown, options: ValidateScheduleOptions = {}): Schedule {
  const minIntervalMs = options.minIntervalMs ?? ROTATION_MIN_INTERVAL_MS;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new AppError('VALIDATION_FAILED', 'Invalid schedule: expected an object with cron or intervalMs', {
      details: { field: 'schedule' },
    });
  }
  const s = input as Record<string, unknown>;
  const problems: string[] = [];
  const fields = new Set<string>();
  const problem = (field: string, text: string) => {
    fields.add(field);
    problems.push(text);
  };
  const out: Schedule = {};

  for (const k of Object.keys(s)) {
    if (!KEYS.has(k)) problem(k, `unknown field "${k}" (allowed: ${[...KEYS].join(', ')})`);
  }

  let timeZone = DEFAULT_TIME_ZONE;
  if (s.timeZone !== undefined) {
    if (typeof s.timeZone === 'string' && isKnownTimeZone(s.timeZone)) {
      timeZone = s.timeZone;
      out.timeZone = s.timeZone;
    } else {
      problem('timeZone', `unknown time zone ${JSON.stringify(s.timeZone)}: use an IANA name such as Europe/Berlin`);
    }
  }

  const hasCron = s.cron !== undefined;
  const hasInterval = s.intervalMs !== undefined;
  if (hasCron === hasInterval) {
    problem(
      'cron',
      hasCron
        ? 'set either cron or intervalMs, not both'
        : 'set either cron (e.g. "0 3 * * SUN") or intervalMs (e.g. 2592000000 for 30 days)',
    );
  }
  if (hasCron) {
    if (typeof s.cron !== 'string' || s.cron.trim() === '') {
      problem('cron', 'cron must be a non-empty string');
    } else if (!fields.has('timeZone')) {
      const before = problems.length;
      checkCron(s.cron, timeZone, minIntervalMs, problems);
      if (problems.length > before) fields.add('cron');
      else out.cron = s.cron;
    }
  }
  if (hasInterval) {
    const sub: string[] = [];
    if (checkDuration('intervalMs', s.intervalMs, minIntervalMs, sub)) out.intervalMs = s.intervalMs as number;
    for (const p of sub) problem('intervalMs', p);
  }

  if (s.window !== undefined) {
    const w = s.window as Record<string, unknown> | null;
    const start = typeof w === 'object' && w !== null ? parseHhMm(w.start) : undefined;
    const end = typeof w === 'object' && w !== null ? parseHhMm(w.end) : undefined;
    if (start === undefined || end === undefined) {
      problem(
        'window',
        'window must be {start: "HH:MM", end: "HH:MM"} in 24-hour time, e.g. {start: "01:00", end: "05:00"}',
      );
    } else if (start === end) {
      problem('window', 'window start and end are equal; omit the window to allow any time of day');
    } else {
      out.window = { start: (w as { start: string }).start, end: (w as { end: string }).end };
    }
  }

  if (s.maxAgeMs !== undefined) {
    const sub: string[] = [];
    if (checkDuration('maxAgeMs', s.maxAgeMs, minIntervalMs, sub)) {
      if (out.intervalMs !== undefined && (s.maxAgeMs as number) < out.intervalMs) {
        sub.push('maxAgeMs is shorter than intervalMs, so the interval would never apply; raise maxAgeMs or drop it');
      } else {
        out.maxAgeMs = s.maxAgeMs as number;
      }
    }
    for (const p of sub) problem('maxAgeMs', p);
  }

  if (s.enabled !== undefined) {
    if (typeof s.enabled === 'boolean') out.enabled = s.enabled;
    else problem('enabled', 'enabled must be true or false');
  }

  if (problems.length > 0) {
    throw new AppError('VALIDATION_FAILED', `Invalid schedule: ${problems.join('; ')}`, {
      details: { fields: [...fields], problems },
    });
  }
  return out;
}
