import { AppError } from '../core/index.js';

/**
 * The API's one schema language: JSON Schema 2020-12 as OpenAPI 3.1 uses it. Every request and response shape is
 * written once, as a plain schema object (`shapes.ts`, `operations.ts`); `openapi.ts` puts those objects into the
 * served document, and the router validates path parameters, query parameters and JSON bodies with
 * {@link checkValue} against the same objects.
 *
 * Why a small interpreter instead of ajv (`@middy/validator/transpile`): the functions ship as one bundle each and
 * their cold start is a measured budget; ajv with its plugins adds ~230 KB and compiles every schema at start. The API
 * validates a handful of small inputs, so it interprets the keywords below and refuses, when the API is created, any
 * keyword it does not implement (a constraint is never silently skipped). The tests validate every response the
 * suites receive against the same document with ajv, and check that this interpreter and ajv agree on requests.
 */
export type Schema = Readonly<Record<string, unknown>>;

/** Keywords {@link checkValue} enforces, and the annotations it reads past. */
const ENFORCED = new Set([
  'type',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'items',
  'minItems',
  'maxItems',
  'properties',
  'required',
  'additionalProperties',
  'oneOf',
  '$ref',
  'not',
]);
const ANNOTATIONS = new Set(['description', 'format', 'example', 'examples', 'default', 'title', 'deprecated']);

/** Thrown by {@link assertSupported} for a schema this interpreter cannot enforce. */
export function assertSupported(schema: Schema, where: string): void {
  for (const k of Object.keys(schema)) {
    if (!ENFORCED.has(k) && !ANNOTATIONS.has(k) && !k.startsWith('x-')) {
      throw new AppError(
        'CONFIG_INVALID',
        `API schema keyword "${k}" at ${where} is not enforced by src/api/schema.ts`,
      );
    }
  }
  const sub = (s: unknown, w: string) => {
    if (s && typeof s === 'object') assertSupported(s as Schema, w);
  };
  sub(schema.items, `${where}/items`);
  sub(schema.not, `${where}/not`);
  if (typeof schema.additionalProperties === 'object')
    sub(schema.additionalProperties, `${where}/additionalProperties`);
  for (const [k, v] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) sub(v, `${where}/${k}`);
  for (const [i, v] of ((schema.oneOf ?? []) as Schema[]).entries()) sub(v, `${where}/oneOf/${i}`);
}

/** Resolves `#/components/schemas/<name>`. */
export type Resolve = (ref: string) => Schema;

/** A validation failure: the field (dotted path) and a sentence saying what to send instead. */
export interface Problem {
  field: string;
  message: string;
}

const typeOf = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'array'
      : typeof v === 'number'
        ? Number.isInteger(v)
          ? 'integer'
          : 'number'
        : typeof v;

const typeMatches = (want: string, v: unknown) => {
  const t = typeOf(v);
  return want === t || (want === 'number' && t === 'integer');
};

const article = (t: string) => (t === 'integer' || t === 'array' || t === 'object' ? `an ${t}` : `a ${t}`);

/** What a valid value looks like, for messages: the schema's own description first. */
function expectation(s: Schema): string {
  const types = ([] as unknown[]).concat(s.type ?? []).filter((t) => t !== 'null') as string[];
  if (Array.isArray(s.enum)) return `one of ${s.enum.join(', ')}`;
  if (types.includes('integer') && s.minimum !== undefined && s.maximum !== undefined) {
    return `an integer from ${s.minimum} to ${s.maximum}`;
  }
  const base = types.length ? types.map(article).join(' or ') : 'a value';
  if (types.includes('string') && s.maxLength !== undefined) {
    return `${base} of at most ${s.maxLength} characters${typeof s.description === 'string' ? ` (${s.description})` : ''}`;
  }
  return typeof s.description === 'string' ? `${base} (${s.description})` : base;
}

/** Checks `value` against `schema`; returns the first problem, or undefined when it conforms. */
export function checkValue(schema: Schema, value: unknown, resolve: Resolve, field: string): Problem | undefined {
  const bad = (message: string): Problem => ({ field, message });
  if (typeof schema.$ref === 'string') {
    const p = checkValue(resolve(schema.$ref), value, resolve, field);
    if (p) return p;
  }
  if (schema.type !== undefined) {
    const types = ([] as unknown[]).concat(schema.type) as string[];
    if (!types.some((t) => typeMatches(t, value))) return bad(`${field} must be ${expectation(schema)}`);
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => e === value)) {
    return bad(`${field} must be one of ${schema.enum.join(', ')}`);
  }
  if (schema.oneOf) {
    const passing = (schema.oneOf as Schema[]).filter((s) => !checkValue(s, value, resolve, field)).length;
    if (passing !== 1) return bad(`${field} must be ${expectation(schema)}`);
  }
  if (schema.not && !checkValue(schema.not as Schema, value, resolve, field)) {
    return bad(`${field} must not be ${expectation(schema.not as Schema)}`);
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (
      (typeof schema.minLength === 'number' && length < schema.minLength) ||
      (typeof schema.maxLength === 'number' && length > schema.maxLength) ||
      (typeof schema.pattern === 'string' && !patternOf(schema.pattern).test(value))
    ) {
      return bad(`${field} must be ${expectation(schema)}`);
    }
  }
  if (typeof value === 'number') {
    if (
      (typeof schema.minimum === 'number' && value < schema.minimum) ||
      (typeof schema.maximum === 'number' && value > schema.maximum)
    ) {
      return bad(`${field} must be ${expectation(schema)}`);
    }
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) {
      return bad(`${field} must have at least ${schema.minItems} items`);
    }
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) {
      return bad(`${field} must have at most ${schema.maxItems} items`);
    }
    if (schema.items) {
      for (const [i, item] of value.entries()) {
        const p = checkValue(schema.items as Schema, item, resolve, `${field}[${i}]`);
        if (p) return p;
      }
    }
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    const at = (k: string) => (field ? `${field}.${k}` : k);
    for (const k of (schema.required ?? []) as string[]) {
      if (!Object.hasOwn(obj, k)) return { field: at(k), message: `${at(k)} is required` };
    }
    for (const [k, v] of Object.entries(obj)) {
      if (Object.hasOwn(props, k)) {
        const p = checkValue(props[k] as Schema, v, resolve, at(k));
        if (p) return p;
      } else if (schema.additionalProperties === false) {
        const known = Object.keys(props);
        return {
          field: at(k.slice(0, 40)),
          message: `Unknown field ${k.slice(0, 40)}; accepted: ${known.length ? known.join(', ') : 'none'}`,
        };
      } else if (typeof schema.additionalProperties === 'object') {
        const p = checkValue(schema.additionalProperties as Schema, v, resolve, at(k));
        if (p) return p;
      }
    }
  }
  return undefined;
}

const patterns = new Map<string, RegExp>();
function patternOf(source: string): RegExp {
  let re = patterns.get(source);
  if (!re) {
    re = new RegExp(source, 'u');
    patterns.set(source, re);
  }
  return re;
}

/**
 * Turns a query or path string into the schema's type (`integer`, `boolean`, else the string itself); a string that
 * does not read as that type is returned unchanged so that {@link checkValue} reports it.
 */
export function fromParamString(schema: Schema, raw: string): unknown {
  const types = ([] as unknown[]).concat(schema.type ?? []);
  if (types.includes('integer') && /^(0|-?[1-9]\d{0,14})$/.test(raw)) return Number(raw);
  if (types.includes('boolean') && (raw === 'true' || raw === 'false')) return raw === 'true';
  return raw;
}

/** The AppError for a {@link Problem}. */
export function invalidInput(p: Problem, received?: unknown): AppError {
  return new AppError('VALIDATION_FAILED', p.message, {
    details: typeof received === 'string' ? { field: p.field, received: received.slice(0, 80) } : { field: p.field },
  });
}
