import { randomBytes, randomUUID } from 'node:crypto';
import type { Clock, LogFields, Logger, Random } from '../core/index.js';
import { redactingReplacer } from '../core/index.js';

/** The real clock. */
export const systemClock: Clock = { nowMs: () => Date.now() };

/** node:crypto randomness. */
export const cryptoRandom: Random = { bytes: (n) => randomBytes(n), uuid: () => randomUUID() };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * A JSON-lines logger with redaction: secret-looking fields, Buffers and `Sensitive` values never print.
 * `write` defaults to stderr; tests pass a collector.
 */
export function createJsonLogger(
  opts: { level?: LogLevel; write?: (line: string) => void; base?: LogFields; clock?: Clock } = {},
): Logger {
  const min = LEVELS[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const clock = opts.clock ?? systemClock;
  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (LEVELS[level] < min) return;
      write(
        JSON.stringify(
          { level, time: new Date(clock.nowMs()).toISOString(), msg, ...base, ...fields },
          redactingReplacer,
        ),
      );
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (f) => make({ ...base, ...f }),
    };
  };
  return make(opts.base ?? {});
}
