import { isAppError, redactingReplacer } from '../core/index.js';
import { CliError, exitCodeFor } from './exitCodes.js';

/** A column of a human table. */
export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
  align?: 'left' | 'right';
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences are what we strip
const ANSI = /\u001b\[[0-9;]*m/g;
const visibleLength = (s: string): number => s.replace(ANSI, '').length;

function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (Array.isArray(v)) return v.map(cell).join(',');
  if (typeof v === 'object') return JSON.stringify(v, redactingReplacer);
  return String(v);
}

/** Renders rows as an aligned plain-text table (two spaces between columns, header first). */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const body = rows.map((r) => columns.map((c) => cell(c.value(r))));
  const widths = columns.map((c, i) => Math.max(visibleLength(c.header), ...body.map((r) => visibleLength(r[i]!))));
  const line = (cells: string[]) =>
    cells
      .map((s, i) => {
        const pad = ' '.repeat(widths[i]! - visibleLength(s));
        return columns[i]!.align === 'right' ? pad + s : s + pad;
      })
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...body.map(line)].join('\n');
}

/** Key/value lines, aligned. */
export function renderPairs(pairs: ReadonlyArray<readonly [string, unknown]>): string {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(w)}  ${cell(v)}`).join('\n');
}

export interface OutputOptions {
  json: boolean;
  color: boolean;
  quiet: boolean;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const paint = (on: boolean, code: string) => (s: string) => (on ? `\u001b[${code}m${s}\u001b[0m` : s);

/**
 * Where a command writes. Results go to stdout (JSON with `--json`, a human rendering otherwise); progress,
 * warnings and errors go to stderr so that `--json` output stays parseable.
 */
export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly bold: (s: string) => string;
  readonly dim: (s: string) => string;
  readonly green: (s: string) => string;
  readonly red: (s: string) => string;
  readonly yellow: (s: string) => string;
  readonly cyan: (s: string) => string;
  readonly #o: OutputOptions;

  constructor(opts: OutputOptions) {
    this.#o = opts;
    this.json = opts.json;
    this.quiet = opts.quiet;
    const c = opts.color && !opts.json;
    this.bold = paint(c, '1');
    this.dim = paint(c, '2');
    this.green = paint(c, '32');
    this.red = paint(c, '31');
    this.yellow = paint(c, '33');
    this.cyan = paint(c, '36');
  }

  /** Prints a command's result: `data` as JSON with `--json`, else the human rendering. */
  result(data: unknown, human: () => string): void {
    if (this.json) this.#o.stdout(`${JSON.stringify(data, redactingReplacer, 2)}\n`);
    else {
      const text = human();
      if (text) this.#o.stdout(text.endsWith('\n') ? text : `${text}\n`);
    }
  }

  /** A line of human text on stdout (not in `--json` mode). */
  line(text = ''): void {
    if (!this.json) this.#o.stdout(`${text}\n`);
  }

  /** Progress on stderr; silenced by `--quiet`. */
  progress(text: string): void {
    if (!this.quiet) this.#o.stderr(`${text}\n`);
  }

  warn(text: string): void {
    this.#o.stderr(`${this.yellow('warning:')} ${text}\n`);
  }

  /** Prints an error (JSON on stderr with `--json`) and returns its exit code. */
  error(err: unknown): number {
    const exitCode = exitCodeFor(err);
    const e = describeError(err);
    if (this.json) {
      this.#o.stderr(`${JSON.stringify({ error: { ...e, exitCode } }, redactingReplacer)}\n`);
    } else {
      const code = e.code ? ` [${e.code}]` : '';
      this.#o.stderr(`${this.red(`error${code}:`)} ${e.message}\n`);
      if (e.hint) this.#o.stderr(`${this.dim('hint:')} ${e.hint}\n`);
    }
    return exitCode;
  }
}

/** The printable parts of an error: never a stack, never an upstream body. */
export function describeError(err: unknown): {
  code?: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
} {
  if (err instanceof CliError) {
    return { message: err.message, hint: err.hint, details: err.details ? { ...err.details } : undefined };
  }
  if (isAppError(err)) {
    const details = Object.keys(err.details).length ? { ...err.details } : undefined;
    // A Key Protect 401 to a token IAM issued: a missing role or the network policy, not the API key.
    const hint =
      err.details.diagnosis === 'no_role_or_network'
        ? 'grant the identity the Key Protect role named above on that instance or key ring, or use the private endpoint (LOCKSTEP_KP_ENDPOINT_TYPE=private); `lockstep check` lists everything missing'
        : hintFor(err.code);
    return { code: err.code, message: err.message, hint, details };
  }
  if (err instanceof Error) return { message: err.message };
  return { message: String(err) };
}

function hintFor(code: string): string | undefined {
  switch (code) {
    case 'UNAUTHENTICATED':
      return 'check the API key (--api-key, LOCKSTEP_API_KEY or .lockstep/dev.json)';
    case 'FORBIDDEN':
      return 'this action needs the operator role; use an operator API key';
    case 'ROTATION_TOO_SOON':
      return 'Key Protect allows one rotation per key per hour; `lockstep plan` shows when the group is next possible';
    case 'RUN_IN_PROGRESS':
    case 'LEASE_HELD':
      return 'another run holds the group; `lockstep status` shows it';
    case 'UPSTREAM_UNAVAILABLE':
    case 'STORE_UNAVAILABLE':
      return 'a dependency is unreachable; is the stack running (`npm start`)?';
    default:
      return undefined;
  }
}
