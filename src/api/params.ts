import { AppError } from '../core/index.js';

/** Longest query value accepted (a cursor is at most 1024). */
const MAX_QUERY_VALUE_CHARS = 1024;

const invalid = (field: string, message: string, received?: string) =>
  new AppError('VALIDATION_FAILED', message, {
    details: received === undefined ? { field } : { field, received: received.slice(0, 80) },
  });

/** Refuses query parameters the route does not know (a typo would otherwise silently do nothing). */
export function checkQueryNames(query: Record<string, string>, allowed: readonly string[]): void {
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name)) {
      throw invalid(
        name.slice(0, 40),
        allowed.length
          ? `Unknown query parameter "${name.slice(0, 40)}"; this route accepts ${allowed.join(', ')}`
          : `Unknown query parameter "${name.slice(0, 40)}"; this route takes none`,
      );
    }
    if (value.length > MAX_QUERY_VALUE_CHARS) throw invalid(name, `Query parameter ${name} is too long`);
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/i;

/**
 * `since`/`until` (already checked against their schema in `operations.ts`) as epoch milliseconds: RFC 3339 date-time
 * or epoch milliseconds; a date that does not exist (2026-02-30) is refused. @throws {AppError} VALIDATION_FAILED
 */
export function parseTime(field: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (/^\d{1,15}$/.test(v)) return Number(v);
  if (RFC3339.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t) && t >= 0) return t;
  }
  throw invalid(field, `${field} must be an RFC 3339 date-time (2026-01-31T00:00:00Z) or epoch milliseconds`, v);
}

/** Records per export response by default, and at most (one Code Engine response carries one page). */
export const DEFAULT_EXPORT_LIMIT = 5_000;
export const MAX_EXPORT_LIMIT = 10_000;

/** `limit` of an export: an integer 1..10000 (default 5000). @throws {AppError} VALIDATION_FAILED */
export function parseExportLimit(v: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > MAX_EXPORT_LIMIT) {
    throw invalid('limit', `limit must be an integer from 1 to ${MAX_EXPORT_LIMIT}`, v);
  }
  return Number(v);
}

/** `format` of an export. @throws {AppError} VALIDATION_FAILED */
export function parseFormat(v: string | undefined): 'jsonl' | 'csv' {
  if (v === 'jsonl' || v === 'csv') return v;
  throw invalid('format', 'format must be jsonl or csv', v);
}
