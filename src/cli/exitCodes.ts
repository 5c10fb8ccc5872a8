import { isAppError } from '../core/index.js';

/**
 * Exit codes scripts can rely on (documented in docs/cli.md and `lockstep --help`).
 * - 0 OK: the command did what was asked.
 * - 1 FAILED: the operation failed (an upstream refused, a rotation failed, the stack is unreachable).
 * - 2 USAGE: bad arguments, bad configuration or a bad groups file; nothing was changed.
 * - 3 VERIFY_FAILED: a verification ran and found a problem (broken audit chain, members not in lockstep).
 */
export const ExitCode = { OK: 0, FAILED: 1, USAGE: 2, VERIFY_FAILED: 3 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error raised by the CLI itself: carries its exit code and an optional hint saying what to do. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  readonly hint?: string;
  readonly details?: Readonly<Record<string, unknown>>;
  constructor(exitCode: ExitCode, message: string, opts: { hint?: string; details?: Record<string, unknown> } = {}) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.hint = opts.hint;
    this.details = opts.details;
  }
}

/**
 * Shortens the quoted values a message echoes (`"<value>" is not a URL`): a huge or garbage value is shown by its
 * first characters and its length, so the message stays readable; a message still longer than `maxTotal` (a value
 * full of quotes) is cut.
 */
export function clipQuoted(message: string, max = 80, maxTotal = 1_000): string {
  const clipped = message.replace(/"([^"]*)"/g, (all, v: string) =>
    v.length > max ? `"${v.slice(0, max - 20)}…" (${v.length} characters)` : all,
  );
  return clipped.length > maxTotal ? `${clipped.slice(0, maxTotal - 40)}… (${clipped.length} characters)` : clipped;
}

/** A usage or configuration error (exit 2). */
export const usageError = (message: string, hint?: string, details?: Record<string, unknown>): CliError =>
  new CliError(ExitCode.USAGE, clipQuoted(message), { hint, details });

/** A command that cannot run in this build: a clear error with exit 2, never a fake result. */
export const notAvailable = (what: string, reason: string): CliError =>
  new CliError(ExitCode.USAGE, `${what} is not available yet: ${reason}`);

/** The exit code for any thrown value. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (isAppError(err)) {
    switch (err.code) {
      case 'VALIDATION_FAILED':
      case 'CONFIG_INVALID':
      case 'INVALID_CURSOR':
        return ExitCode.USAGE;
      case 'CHAIN_BROKEN':
      case 'MATERIAL_MISMATCH':
        return ExitCode.VERIFY_FAILED;
      default:
        return ExitCode.FAILED;
    }
  }
  return ExitCode.FAILED;
}
