import { createHash } from 'node:crypto';
import { AppError } from '../core/index.js';

/**
 * API cursors wrap the store's own page cursor (a key-range start) with the query it belongs to and a checksum,
 * so a cursor edited by hand, or replayed against another group or time filter, is refused with INVALID_CURSOR
 * instead of returning a wrong page. They are opaque to clients: base64url, no meaning promised.
 */
const MAX_CURSOR_CHARS = 1024;

function checksum(payload: string): string {
  return createHash('sha256').update('lockstep/api-cursor/v1\n').update(payload).digest('base64url').slice(0, 16);
}

/** Wraps a store cursor for `scope` (e.g. `generations:<groupId>:<since>:<until>`). */
export function encodeCursor(storeCursor: string, scope: string): string {
  const payload = Buffer.from(JSON.stringify({ s: storeCursor, q: scope })).toString('base64url');
  return `${payload}.${checksum(payload)}`;
}

/** Unwraps an API cursor for `scope`. @throws {AppError} INVALID_CURSOR */
export function decodeCursor(cursor: string, scope: string): string {
  const bad = (why: string) =>
    new AppError('INVALID_CURSOR', `The cursor is not valid (${why}); start again without a cursor`, {
      details: { field: 'cursor' },
    });
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_CHARS) throw bad('length');
  const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{16})$/.exec(cursor);
  if (!m) throw bad('format');
  const [, payload, sum] = m as unknown as [string, string, string];
  if (checksum(payload) !== sum) throw bad('checksum');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw bad('encoding');
  }
  const { s, q } = (parsed ?? {}) as { s?: unknown; q?: unknown };
  if (typeof s !== 'string' || typeof q !== 'string') throw bad('content');
  if (q !== scope) throw bad('it belongs to another query');
  return s;
}
