/** Time, injected everywhere; pure modules receive `nowMs` values, never read the clock. */
export interface Clock {
  /** Milliseconds since the epoch. */
  nowMs(): number;
}

/** Randomness, injected so tests can be deterministic. */
export interface Random {
  /** `n` cryptographically strong random bytes (a fresh Buffer the caller owns). */
  bytes(n: number): Buffer;
  /** A random v4 UUID. */
  uuid(): string;
}

export type LogFields = Readonly<Record<string, unknown>>;

/** The narrow logger port. Implementations must redact sensitive values (see `redact.ts`). */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
