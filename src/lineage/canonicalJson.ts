import { AppError } from '../core/index.js';

/** True for a lone (unpaired) UTF-16 surrogate anywhere in `s`: such strings are not valid Unicode (I-JSON). */
function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return true;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

function reject(path: string, what: string): never {
  throw new AppError('VALIDATION_FAILED', `Cannot canonicalize ${path}: ${what}`, { details: { path } });
}

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function serialize(value: unknown, path: string, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      if (hasLoneSurrogate(value)) reject(path, 'string contains a lone UTF-16 surrogate (not valid Unicode)');
      // ES2019+ JSON.stringify escapes exactly as RFC 8785 §3.2.2.2 requires.
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) reject(path, `number ${value} is not finite (JSON has no NaN or Infinity)`);
      // ECMAScript Number::toString, which RFC 8785 §3.2.2.3 adopts; -0 becomes "0".
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      return reject(path, `${typeof value} is not a JSON value`);
  }
  if (value === null) return 'null';
  if (seen.has(value)) reject(path, 'value contains a cycle');
  seen.add(value);
  let out: string;
  if (Array.isArray(value)) {
    out = `[${value
      .map((item, i) => {
        if (item === undefined) reject(`${path}[${i}]`, 'undefined is not allowed in arrays');
        return serialize(item, `${path}[${i}]`, seen);
      })
      .join(',')}]`;
  } else if (isPlainObject(value)) {
    // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 prescribes.
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    out = `{${keys.map((k) => `${serialize(k, path, seen)}:${serialize(value[k], `${path}.${k}`, seen)}`).join(',')}}`;
  } else {
    const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'unknown';
    reject(path, `${name} is not a plain object; convert it to plain JSON data first`);
  }
  seen.delete(value);
  return out;
}

/**
 * Serializes `value` in the JSON Canonicalization Scheme (RFC 8785): object keys sorted by UTF-16 code units, no
 * whitespace, ECMAScript number serialization. Properties whose value is `undefined` are dropped (as
 * `JSON.stringify` does). Deterministic: equal data always gives the same string.
 *
 * @param value - plain JSON data: `null`, booleans, finite numbers, strings, arrays and plain objects.
 * @returns the canonical JSON text.
 * @throws {AppError} VALIDATION_FAILED for non-finite numbers, lone surrogates, `undefined` array items, cycles,
 *   functions, symbols, bigints and non-plain objects (Date, Buffer, Map, class instances …); the message names the
 *   offending path.
 */
export function canonicalJson(value: unknown): string {
  return serialize(value, '$', new Set());
}
